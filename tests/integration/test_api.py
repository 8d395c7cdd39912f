"""The JSON HTTP API through a real server: statuses, error codes and bodies."""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import jwt
import pytest
from api_support import auth, error_of
from app_support import Client

from kaamos_sfu import __version__
from kaamos_sfu.appkeys import API_SECRET, REGISTRY, ROOMS
from kaamos_sfu.web.api import rfc3339
from kaamos_sfu.web.auth import issue_token

RFC3339_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
UNKNOWN_ROOM = "AbCdEf1234"


@pytest.fixture
def token(client: Client) -> str:
    return issue_token(client.app[API_SECRET], "test-bot")


async def create_room(client: Client, token: str, **kwargs: Any) -> dict[str, Any]:
    resp = await client.post("/api/rooms/create", headers=auth(token), **kwargs)
    assert resp.status == 201, await resp.text()
    return await resp.json()


def test_rfc3339_is_utc_seconds_with_z() -> None:
    """rfc3339 writes UTC at second precision with a Z, dropping fractions."""
    assert rfc3339(0) == "1970-01-01T00:00:00Z"
    assert rfc3339(1795329600.999) == "2026-11-22T06:40:00Z"
    assert RFC3339_RE.match(rfc3339(1e9))


async def test_create_without_body(client: Client, token: str) -> None:
    """A create with no body at all returns 201 with the room id, URL and timestamps."""
    resp = await client.post("/api/rooms/create", headers=auth(token))
    assert resp.status == 201
    body = await resp.json()
    assert set(body) == {"room_id", "url", "created_at", "expires_at"}
    assert re.fullmatch(r"[a-zA-Z0-9]{10}", body["room_id"])
    # No public_url: the link is built on the address the request came to.
    assert body["url"] == str(client.make_url(f"/room/{body['room_id']}"))
    assert RFC3339_RE.match(body["created_at"]) and RFC3339_RE.match(body["expires_at"])
    assert resp.headers["Location"] == f"/api/rooms/{body['room_id']}"


async def test_create_expires_one_ttl_after_creation(client: Client, token: str) -> None:
    """expires_at is created_at plus rooms.expire_after_hours (24 h by default)."""
    body = await create_room(client, token)
    record = await client.app[REGISTRY].get(body["room_id"])
    assert record is not None
    assert body["created_at"] == rfc3339(record.created_at)
    assert body["expires_at"] == rfc3339(record.created_at + 24 * 3600)


async def test_create_url_uses_public_url(make_config: Any, make_client: Any) -> None:
    """The room URL is built on server.public_url, without a doubled slash."""
    client = await make_client(make_config(server={"public_url": "https://meet.example.org/"}))
    token = issue_token(client.app[API_SECRET], "bot")
    body = await create_room(client, token)
    assert body["url"] == f"https://meet.example.org/room/{body['room_id']}"


@pytest.mark.parametrize("data", [b"", b"  \n", b"{}"])
async def test_create_accepts_empty_bodies(client: Client, token: str, data: bytes) -> None:
    """An empty body, whitespace or an empty object all create a room."""
    await create_room(client, token, data=data)


@pytest.mark.parametrize("creator", [42, 0, "user-17", "x" * 64, None])
async def test_create_stores_creator(client: Client, token: str, creator: Any) -> None:
    """A valid creator_user_id (int, 1-64 char string, or null) is stored with the room."""
    body = await create_room(client, token, json={"creator_user_id": creator})
    record = await client.app[REGISTRY].get(body["room_id"])
    assert record is not None and record.creator_user_id == creator


@pytest.mark.parametrize(
    "data",
    [
        b"{not json",
        b"[]",
        b'"a string"',
        b"17",
        b"\xff\xfe\x00garbage",
        b'{"creator_user_id": true}',
        b'{"creator_user_id": false}',
        b'{"creator_user_id": 1.5}',
        b'{"creator_user_id": ""}',
        b'{"creator_user_id": "' + b"x" * 65 + b'"}',
        b'{"creator_user_id": [1]}',
        b'{"creator_user_id": {"id": 1}}',
        b'{"creator_user_id": 100000000000000000000000}',
        b'{"creator": 1}',
    ],
)
async def test_create_rejects_bad_bodies(client: Client, token: str, data: bytes) -> None:
    """Invalid JSON, a non-object, an unknown field or a wrong creator type is 400 BAD_REQUEST."""
    resp = await client.post("/api/rooms/create", headers=auth(token), data=data)
    assert await error_of(resp, 400) == "BAD_REQUEST"
    assert await client.app[REGISTRY].count() == 0


async def test_create_rejects_huge_body(client: Client, token: str) -> None:
    """A body above the 1 MiB client limit is 413 PAYLOAD_TOO_LARGE in the JSON shape."""
    resp = await client.post("/api/rooms/create", headers=auth(token), data=b" " * (2 << 20))
    assert await error_of(resp, 413) == "PAYLOAD_TOO_LARGE"


@pytest.mark.parametrize(
    "case",
    [
        "missing",
        "empty",
        "basic",
        "no-token",
        "garbage",
        "wrong-secret",
        "expired",
        "no-sub",
        "alg-none",
    ],
)
async def test_create_requires_valid_bearer(client: Client, case: str) -> None:
    """Without a valid bearer token create is 401 UNAUTHORIZED with a Bearer challenge."""
    secret = client.app[API_SECRET]
    headers = {
        "missing": {},
        "empty": {"Authorization": ""},
        "basic": {"Authorization": "Basic dXNlcjpwYXNz"},
        "no-token": {"Authorization": "Bearer "},
        "garbage": auth("not.a.jwt"),
        "wrong-secret": auth(issue_token("another-secret-" + "x" * 32, "bot")),
        "expired": auth(issue_token(secret, "bot", expires_in=-60)),
        "no-sub": auth(jwt.encode({"iat": 1}, secret, algorithm="HS256")),
        "alg-none": auth(jwt.encode({"sub": "bot"}, "", algorithm="none")),
    }[case]
    resp = await client.post("/api/rooms/create", headers=headers)
    assert await error_of(resp, 401) == "UNAUTHORIZED"
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert await client.app[REGISTRY].count() == 0


async def test_expired_token_message_says_expired(client: Client) -> None:
    """The 401 message tells an expired token apart from a forged one."""
    token = issue_token(client.app[API_SECRET], "bot", expires_in=-60)
    resp = await client.post("/api/rooms/create", headers=auth(token))
    assert "expired" in (await resp.json())["error"]["message"]


async def test_create_logs_room_and_sub_not_token(
    client: Client, token: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Room creation is logged with room_id and the token's sub, never the token."""
    with caplog.at_level(logging.INFO, logger="kaamos_sfu"):
        body = await create_room(client, token)
    created = [r for r in caplog.records if r.getMessage() == "room created"]
    assert len(created) == 1
    assert vars(created[0])["room_id"] == body["room_id"]
    assert vars(created[0])["sub"] == "test-bot"
    for record in caplog.records:
        assert token not in str(vars(record))


async def test_get_room(client: Client, token: str) -> None:
    """GET on a fresh room is 200 with no participants, the creation timestamps and the
    node's own WebSocket URL for the room: with no URL configured, as the client reached it."""
    created = await create_room(client, token)
    resp = await client.get(f"/api/rooms/{created['room_id']}")
    assert resp.status == 200
    assert await resp.json() == {
        "room_id": created["room_id"],
        "active": False,
        "participants": 0,
        "created_at": created["created_at"],
        "expires_at": created["expires_at"],
        "signaling_url": f"ws://{client.host}:{client.port}/ws/{created['room_id']}",
    }


@pytest.mark.parametrize(
    ("cluster", "signaling_url"),
    [
        ({}, "wss://meet.example.org/ws/"),
        ({"node_url": "https://sfu2.example.org/"}, "wss://sfu2.example.org/ws/"),
        ({"node_url": "http://10.0.0.5:{port}"}, "ws://10.0.0.5:8080/ws/"),
    ],
)
async def test_get_room_signaling_url_follows_node_url(
    make_config: Any, make_client: Any, cluster: dict[str, str], signaling_url: str
) -> None:
    """signaling_url is derived from cluster.node_url, else server.public_url: https
    becomes wss, {port} the port."""
    client = await make_client(
        make_config(server={"public_url": "https://meet.example.org"}, cluster=cluster)
    )
    created = await create_room(client, issue_token(client.app[API_SECRET], "bot"))
    body = await (await client.get(f"/api/rooms/{created['room_id']}")).json()
    assert body["signaling_url"] == signaling_url + created["room_id"]


async def test_get_room_counts_participants(
    client: Client, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """participants comes from RoomManager.participants and active is participants > 0."""
    rooms = client.app[ROOMS]
    monkeypatch.setattr(rooms, "participants", lambda room_id: 3)
    created = await create_room(client, token)
    body = await (await client.get(f"/api/rooms/{created['room_id']}")).json()
    assert body["participants"] == 3 and body["active"] is True


@pytest.mark.parametrize("room_id", ["short", "AbCdEf12345", "AbCd-f1234", "AbCdEf123%C3%A9"])
async def test_get_invalid_room_id(client: Client, room_id: str) -> None:
    """A room id that is not 10 letters and digits is 400 INVALID_ROOM_ID."""
    resp = await client.get(f"/api/rooms/{room_id}")
    assert await error_of(resp, 400) == "INVALID_ROOM_ID"


async def test_get_unknown_room(client: Client) -> None:
    """A well-formed id that was never created is 404 ROOM_NOT_FOUND."""
    resp = await client.get(f"/api/rooms/{UNKNOWN_ROOM}")
    assert await error_of(resp, 404) == "ROOM_NOT_FOUND"


async def test_expired_room_is_410_and_deletable(make_config: Any, make_client: Any) -> None:
    """After expire_after_hours a room is 410 ROOM_EXPIRED, and DELETE still works (204)."""
    client = await make_client(make_config(rooms={"expire_after_hours": 0.2 / 3600}))
    token = issue_token(client.app[API_SECRET], "bot")
    room_id = (await create_room(client, token))["room_id"]
    await asyncio.sleep(0.25)
    resp = await client.get(f"/api/rooms/{room_id}")
    assert await error_of(resp, 410) == "ROOM_EXPIRED"
    resp = await client.delete(f"/api/rooms/{room_id}", headers=auth(token))
    assert resp.status == 204
    resp = await client.get(f"/api/rooms/{room_id}")
    assert await error_of(resp, 404) == "ROOM_NOT_FOUND"


async def test_delete_room(client: Client, token: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """DELETE removes the record, then ends the live room (so nobody can join meanwhile):
    204 with no body, then 404."""
    calls: list[tuple[str, bool]] = []
    registry = client.app[REGISTRY]

    async def end_room(room_id: str) -> None:
        calls.append((room_id, await registry.get(room_id) is not None))

    monkeypatch.setattr(client.app[ROOMS], "end_room", end_room)
    room_id = (await create_room(client, token))["room_id"]
    resp = await client.delete(f"/api/rooms/{room_id}", headers=auth(token))
    assert resp.status == 204
    assert await resp.read() == b""
    assert calls == [(room_id, False)]  # the record was gone while peers were ended
    resp = await client.get(f"/api/rooms/{room_id}")
    assert await error_of(resp, 404) == "ROOM_NOT_FOUND"


async def test_delete_errors(client: Client, token: str) -> None:
    """DELETE needs a token (401), a valid id (400) and an existing room (404)."""
    room_id = (await create_room(client, token))["room_id"]
    resp = await client.delete(f"/api/rooms/{room_id}")
    assert await error_of(resp, 401) == "UNAUTHORIZED"
    assert resp.headers["WWW-Authenticate"] == "Bearer"
    resp = await client.delete("/api/rooms/bad-id", headers=auth(token))
    assert await error_of(resp, 400) == "INVALID_ROOM_ID"
    resp = await client.delete(f"/api/rooms/{UNKNOWN_ROOM}", headers=auth(token))
    assert await error_of(resp, 404) == "ROOM_NOT_FOUND"
    assert (await client.get(f"/api/rooms/{room_id}")).status == 200


async def test_method_not_allowed_shape(client: Client) -> None:
    """aiohttp's own 405 on an API path uses the JSON error shape and keeps Allow."""
    resp = await client.put("/api/rooms/create")
    assert await error_of(resp, 405) == "METHOD_NOT_ALLOWED"
    assert "POST" in resp.headers["Allow"]
    resp = await client.post("/health")
    assert await error_of(resp, 405) == "METHOD_NOT_ALLOWED"


async def test_unknown_api_path_shape(client: Client) -> None:
    """aiohttp's own 404 under /api/ uses the JSON error shape."""
    resp = await client.get("/api/nothing/here")
    assert await error_of(resp, 404) == "NOT_FOUND"


async def test_unexpected_exception_is_500_internal(
    client: Client, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unexpected exception is 500 INTERNAL without its text leaking to the client."""

    def boom(room_id: str) -> int:
        raise RuntimeError("secret detail")

    monkeypatch.setattr(client.app[ROOMS], "participants", boom)
    room_id = (await create_room(client, token))["room_id"]
    resp = await client.get(f"/api/rooms/{room_id}")
    assert await error_of(resp, 500) == "INTERNAL"
    assert "secret detail" not in await resp.text()


async def test_health(client: Client) -> None:
    """/health reports ok, the live room and peer counts and the version."""
    resp = await client.get("/health")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok", "rooms": 0, "peers": 0, "version": __version__}
