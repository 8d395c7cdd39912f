"""Fixtures of the integration tests: the app on a real loopback port behind an HTTP
client, and a clock that moves only when a test moves it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer
from app_support import Client, MakeClient
from fake_clock import FakeClock

from kaamos_sfu.app import create_app
from kaamos_sfu.config import Config


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


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
