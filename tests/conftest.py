"""Fixtures for every folder (unit/, integration/, browser/): a test configuration and a
redis-server; and KAAMOS_TEST_TIMEOUT_FACTOR applied to pytest-timeout's per-test limit.

pytest puts this folder on sys.path (rootdir conftest, no __init__.py), so every test
imports the helper modules here by name: `from rtc_client import RtcClient`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from app_support import MakeConfig, build_config
from redis_support import RedisServer
from timing import FACTOR, scaled

from kaamos_sfu.config import Config


@pytest.hookimpl(tryfirst=True)
def pytest_timeout_set_timer(item: pytest.Item, settings: Any) -> bool | None:
    """pytest-timeout's limit for this test (pyproject's `timeout`, or the test's
    `pytest.mark.timeout`), times KAAMOS_TEST_TIMEOUT_FACTOR."""
    if FACTOR == 1:
        return None  # pytest-timeout's own hook sets the timer
    import pytest_timeout

    longer = settings._replace(timeout=scaled(settings.timeout))
    return bool(pytest_timeout.pytest_timeout_set_timer(item=item, settings=longer))


def pytest_report_header() -> str | None:
    if FACTOR == 1:
        return None
    return f"KAAMOS_TEST_TIMEOUT_FACTOR={FACTOR:g}: every wait and per-test timeout x{FACTOR:g}"


@pytest.fixture
def make_config(tmp_path: Path) -> MakeConfig:
    """build_config bound to this test's tmp_path."""
    return lambda **sections: build_config(tmp_path, **sections)


@pytest.fixture
def config(make_config: MakeConfig) -> Config:
    return make_config()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the session; tests that share it flush it first (`redis_url`)."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's Redis, emptied for this test."""
    if not redis_server.ping():
        redis_server.start()
    redis_server.command("FLUSHALL")
    return redis_server.url


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, which the test may stop and restart."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()
