"""Helpers for tests that run real calls: a server on loopback, rooms, aiortc clients, and
raw signaling sockets."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient
from api_support import auth
from rtc_client import RtcClient
from timing import scaled

from kaamos_sfu.appkeys import API_SECRET
from kaamos_sfu.web.auth import issue_token


async def create_room(http: TestClient) -> str:
    token = issue_token(http.server.app[API_SECRET], "tests")
    response = await http.post("/api/rooms/create", headers=auth(token))
    assert response.status == 201, await response.text()
    return str((await response.json())["room_id"])


def base_url(http: TestClient) -> str:
    return str(http.make_url("")).rstrip("/")


@asynccontextmanager
async def clients(
    http: TestClient, room_id: str, count: int, **options: Any
) -> AsyncIterator[list[RtcClient]]:
    """`count` clients named A, B, C… joined one after the other; all closed at the end."""
    made: list[RtcClient] = []
    try:
        for index in range(count):
            client = RtcClient(base_url(http), room_id, "ABCDEFGH"[index], **options)
            made.append(client)
            reply = await client.join()
            assert reply["type"] == "joined", reply
        yield made
    finally:
        await asyncio.gather(*(c.close() for c in made), return_exceptions=True)


async def receive_json(ws: aiohttp.ClientWebSocketResponse, timeout: float = 5.0) -> Any:
    """The next frame of a raw signaling socket, which must be a JSON text frame; fails
    after `timeout` seconds (scaled)."""
    message = await ws.receive(timeout=scaled(timeout))
    assert message.type == aiohttp.WSMsgType.TEXT, message
    return json.loads(message.data)


async def expect_close(ws: aiohttp.ClientWebSocketResponse, code: int) -> None:
    """The next frame of a raw signaling socket closes it with `code`."""
    message = await ws.receive(timeout=scaled(5.0))
    assert message.type == aiohttp.WSMsgType.CLOSE, message
    assert message.data == code


async def send_wrong_node(ws: web.WebSocketResponse, signaling_url: str) -> None:
    """Answer a join as a node that does not hold the room (docs/protocol.md): the error
    WRONG_NODE naming the holder's socket, then close 4421. For fake nodes."""
    await ws.send_json(
        {
            "type": "error",
            "code": "WRONG_NODE",
            "message": "elsewhere",
            "signaling_url": signaling_url,
        }
    )
    await ws.close(code=4421)
