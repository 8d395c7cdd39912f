"""The browser pages and static files, served from a temporary static dir."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from app_support import Client

from kaamos_sfu.app import create_app
from kaamos_sfu.config import ConfigError


async def test_index_page(client: Client, config: Any) -> None:
    """/ serves index.html as HTML that browsers must revalidate."""
    resp = await client.get("/")
    assert resp.status == 200
    assert resp.content_type == "text/html"
    assert await resp.text() == (config.static_dir / "index.html").read_text()
    assert resp.headers["Cache-Control"] == "no-cache"
    assert resp.headers["Referrer-Policy"] == "no-referrer"


@pytest.mark.parametrize("room_id", ["AbCdEf1234", "not-a-valid-id", "x"])
async def test_room_page_for_any_id(client: Client, config: Any, room_id: str) -> None:
    """/room/{id} serves room.html for any id, existing or not: the page reports errors."""
    resp = await client.get(f"/room/{room_id}")
    assert resp.status == 200
    assert await resp.text() == (config.static_dir / "room.html").read_text()
    assert resp.headers["Cache-Control"] == "no-cache"


async def test_static_files(client: Client, config: Any) -> None:
    """/static/ serves files of the static dir, without listing it or leaving it."""
    (config.static_dir / "app.js").write_text("console.log(1);")
    resp = await client.get("/static/app.js")
    assert resp.status == 200
    assert await resp.text() == "console.log(1);"
    assert (await client.get("/static/")).status in (403, 404)
    assert (await client.get("/static/missing.js")).status == 404
    (config.static_dir.parent / "outside.txt").write_text("private")
    resp = await client.get("/static/%2E%2E/outside.txt")
    assert resp.status in (403, 404)


async def test_non_api_errors_are_not_json(client: Client) -> None:
    """Outside /api/ and /health a 404 stays aiohttp's plain one."""
    resp = await client.get("/nothing")
    assert resp.status == 404
    assert resp.content_type != "application/json"


async def test_missing_page_file_is_404(client: Client, config: Any) -> None:
    """A static dir without room.html answers 404 instead of failing."""
    (config.static_dir / "room.html").unlink()
    assert (await client.get("/room/AbCdEf1234")).status == 404


def test_missing_static_dir_is_a_config_error(make_config: Any, tmp_path: Path) -> None:
    """A static_dir that does not exist stops the start with a message naming the key."""
    config = make_config(server={"static_dir": str(tmp_path / "absent")})
    with pytest.raises(ConfigError, match=r"server\.static_dir"):
        create_app(config)
