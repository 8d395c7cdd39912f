"""Bot API hardening: rate limits on room creation, the room cap, and WebSocket joins per IP."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from api_support import auth, error_of
from call_support import create_room, expect_close, receive_json
from fake_clock import FakeClock

from kaamos_sfu.appkeys import API_SECRET, REGISTRY
from kaamos_sfu.cluster.registry import retry_after_seconds
from kaamos_sfu.web.auth import issue_token


def use_fake_clock(client: Any) -> FakeClock:
    clock = FakeClock()
    client.app[REGISTRY]._clock = clock  # the in-memory registry's time source
    return clock


async def create(client: Any, token: str, creator: Any = None) -> Any:
    body = {} if creator is None else {"creator_user_id": creator}
    return await client.post("/api/rooms/create", headers=auth(token), json=body)


@pytest.mark.parametrize("wait, expected", [(0.001, 1), (1.0, 1), (1.2, 2), (59.99, 60)])
def test_retry_after_is_whole_seconds_at_least_one(wait: float, expected: int) -> None:
    """A wait becomes Retry-After seconds rounded up, never 0."""
    assert retry_after_seconds(wait) == expected


async def test_per_token_rate_limit(make_config: Any, make_client: Any) -> None:
    """The token's sub may create rooms_per_minute_per_token rooms a minute; the next is 429
    RATE_LIMITED with Retry-After; another sub is not affected; a minute later it works."""
    client = await make_client(make_config(api={"rooms_per_minute_per_token": 3}))
    clock = use_fake_clock(client)
    bot = issue_token(client.app[API_SECRET], "bot")
    for _ in range(3):
        assert (await create(client, bot)).status == 201
        clock.now += 10
    resp = await create(client, bot)
    assert await error_of(resp, 429) == "RATE_LIMITED"
    assert resp.headers["Retry-After"] == "30"  # the first of the three leaves the window then
    other = issue_token(client.app[API_SECRET], "other-bot")
    assert (await create(client, other)).status == 201
    clock.now += 29.5
    resp = await create(client, bot)
    assert await error_of(resp, 429) == "RATE_LIMITED"
    assert resp.headers["Retry-After"] == "1"
    clock.now += 0.5
    assert (await create(client, bot)).status == 201


async def test_per_creator_rate_limit(make_config: Any, make_client: Any) -> None:
    """One creator_user_id is limited across tokens; other creators and no creator are not.
    The integer 42 and the string "42" are the same user."""
    client = await make_client(make_config(api={"rooms_per_minute_per_creator": 2}))
    use_fake_clock(client)
    tokens = [issue_token(client.app[API_SECRET], f"bot-{i}") for i in range(4)]
    assert (await create(client, tokens[0], 42)).status == 201
    assert (await create(client, tokens[1], "42")).status == 201
    resp = await create(client, tokens[2], 42)
    assert await error_of(resp, 429) == "RATE_LIMITED"
    assert "creator_user_id" in (await resp.json())["error"]["message"]
    assert 1 <= int(resp.headers["Retry-After"]) <= 60
    assert (await create(client, tokens[2], 43)).status == 201
    assert (await create(client, tokens[3])).status == 201


async def test_default_limit_is_ten_per_minute(client: Any) -> None:
    """With the defaults the eleventh room of one token within a minute is refused."""
    token = issue_token(client.app[API_SECRET], "bot")
    for _ in range(10):
        assert (await create(client, token)).status == 201
    assert await error_of(await create(client, token), 429) == "RATE_LIMITED"


async def test_room_cap_is_503_and_uses_no_rate(make_config: Any, make_client: Any) -> None:
    """At rooms.max_rooms, create is 503 AT_CAPACITY (consuming no rate); after a delete
    there is room again."""
    client = await make_client(
        make_config(rooms={"max_rooms": 2}, api={"rooms_per_minute_per_token": 3})
    )
    token = issue_token(client.app[API_SECRET], "bot")
    first = await (await create(client, token)).json()
    assert (await create(client, token)).status == 201
    for _ in range(3):
        assert await error_of(await create(client, token), 503) == "AT_CAPACITY"
    resp = await client.delete(f"/api/rooms/{first['room_id']}", headers=auth(token))
    assert resp.status == 204
    assert (await create(client, token)).status == 201  # the third of three, not rate limited


async def test_room_cap_holds_for_concurrent_creates_with_redis(
    make_config: Any, make_client: Any, redis_url: str
) -> None:
    """Thirty creates at once with rooms.max_rooms = 5 and Redis: five rooms, and every
    other answer is 503 AT_CAPACITY."""
    client = await make_client(
        make_config(
            cluster={"redis_url": redis_url},
            rooms={"max_rooms": 5},
            api={"rooms_per_minute_per_token": 1000},
        )
    )
    token = issue_token(client.app[API_SECRET], "bot")
    responses = await asyncio.gather(*(create(client, token) for _ in range(30)))
    assert sorted(r.status for r in responses) == [201] * 5 + [503] * 25
    for response in responses:
        if response.status == 503:
            assert await error_of(response, 503) == "AT_CAPACITY"
    assert await client.app[REGISTRY].count() == 5


async def expect_rate_limited(ws: aiohttp.ClientWebSocketResponse) -> None:
    reply = await receive_json(ws)
    assert reply["type"] == "error" and reply["code"] == "RATE_LIMITED"
    assert isinstance(reply["retry_after"], int) and 1 <= reply["retry_after"] <= 60
    await expect_close(ws, 4429)


async def joins_ok(client: Any, room_id: str, headers: dict[str, str] | None = None) -> None:
    ws = await client.ws_connect(f"/ws/{room_id}", headers=headers or {})
    await ws.send_json({"type": "join", "name": "A", "publish": []})
    assert (await receive_json(ws))["type"] == "joined"
    await ws.close()


async def test_websocket_joins_per_ip(make_config: Any, make_client: Any) -> None:
    """The connection after signaling.joins_per_minute_per_ip from one address gets
    RATE_LIMITED with retry_after, then close 4429; without a trusted proxy an
    X-Forwarded-For header changes nothing."""
    client = await make_client(make_config(signaling={"joins_per_minute_per_ip": 2}))
    room_id = await create_room(client)
    await joins_ok(client, room_id)
    await joins_ok(client, room_id, {"X-Forwarded-For": "198.51.100.1"})
    ws = await client.ws_connect(f"/ws/{room_id}", headers={"X-Forwarded-For": "198.51.100.2"})
    await expect_rate_limited(ws)
    metrics = await (await client.get("/metrics")).text()
    assert 'kaamos_rate_limited_total{limit="websocket_per_ip"} 1.0' in metrics


async def test_websocket_joins_per_forwarded_ip(make_config: Any, make_client: Any) -> None:
    """Behind a trusted proxy each X-Forwarded-For client has its own budget."""
    client = await make_client(
        make_config(
            signaling={"joins_per_minute_per_ip": 1}, server={"trusted_proxies": ["127.0.0.0/8"]}
        )
    )
    room_id = await create_room(client)
    await joins_ok(client, room_id, {"X-Forwarded-For": "198.51.100.1"})
    ws = await client.ws_connect(f"/ws/{room_id}", headers={"X-Forwarded-For": "198.51.100.1"})
    await expect_rate_limited(ws)
    await joins_ok(client, room_id, {"X-Forwarded-For": "198.51.100.2"})
