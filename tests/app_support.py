"""The configuration a test server runs with, and the types of the fixtures that make one
(tests/conftest.py, tests/integration/conftest.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

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
