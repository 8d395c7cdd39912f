"""Shared fixtures: a test configuration and a running app behind a real HTTP client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from redis_support import RedisServer

from kaamos_sfu.app import create_app
from kaamos_sfu.config import Config, apply_mapping, validate

Client = TestClient[web.Request, web.Application]

MakeConfig = Callable[..., Config]
MakeClient = Callable[[Config], Awaitable[Client]]

INDEX_HTML = "<!doctype html><title>test index</title>"
ROOM_HTML = "<!doctype html><title>test room</title>"


def build_config(tmp_path: Path, **sections: dict[str, Any]) -> Config:
    """A config whose files live in tmp_path and whose ICE stays on loopback.

    Keyword arguments are sections, as in config.toml: build_config(p, rooms={"max_peers": 2}).
    """
    static_dir = tmp_path / "static"
    if not static_dir.exists():
        static_dir.mkdir()
        (static_dir / "index.html").write_text(INDEX_HTML)
        (static_dir / "room.html").write_text(ROOM_HTML)
    config = Config()
    base = {
        "server": {"state_dir": str(tmp_path / "state"), "static_dir": str(static_dir)},
        "ice": {"host_addresses": ["127.0.0.1"]},
    }
    apply_mapping(config, base, origin="tests")
    apply_mapping(config, sections, origin="tests")
    validate(config)
    return config


@pytest.fixture
def make_config(tmp_path: Path) -> MakeConfig:
    """build_config bound to this test's tmp_path."""
    return lambda **sections: build_config(tmp_path, **sections)


@pytest.fixture
def config(make_config: MakeConfig) -> Config:
    return make_config()


@pytest.fixture
async def make_client() -> AsyncIterator[MakeClient]:
    """Start create_app(config) on a free loopback port; every client is closed at the end."""
    clients: list[Client] = []

    async def make(config: Config) -> Client:
        client = TestClient(TestServer(create_app(config), host="127.0.0.1"))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in reversed(clients):
        await client.close()


@pytest.fixture
async def client(make_client: MakeClient, config: Config) -> Client:
    return await make_client(config)


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
