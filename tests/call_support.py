"""Helpers for tests that run real calls: a server on loopback, rooms, and aiortc clients."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from aiohttp.test_utils import TestClient
from rtc_client import RtcClient

from kaamos_sfu.appkeys import API_SECRET
from kaamos_sfu.web.auth import issue_token


async def create_room(http: TestClient) -> str:
    token = issue_token(http.server.app[API_SECRET], "tests")
    response = await http.post("/api/rooms/create", headers={"Authorization": f"Bearer {token}"})
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


async def eventually(condition: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    """Wait until `condition()` holds, polling; fail after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        await asyncio.sleep(0.05)
