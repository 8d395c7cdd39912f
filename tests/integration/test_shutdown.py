"""Graceful shutdown: draining refuses newcomers, tells peers, lets calls go on, then stops.

In-process for what a client sees during the drain, and on a real server process for the
signals, the exit status and the rooms found after a restart (after SIGTERM or SIGKILL)."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from call_support import base_url, clients, create_room, expect_close, receive_json
from cli_support import TIMEOUT, poll_health, start_server, write_config
from ports import free_port
from rtc_client import RtcClient
from timing import eventually, scaled

from kaamos_sfu.appkeys import API_SECRET, REGISTRY, ROOMS
from kaamos_sfu.rtc_bridge import configure_ice
from kaamos_sfu.server import drain
from kaamos_sfu.web.auth import issue_token

SECRET = "a-test-api-secret-that-is-long-enough-1234"


def _shutdown_notices(client: RtcClient) -> list[dict[str, object]]:
    return [m for m in client.messages if m["type"] == "server-shutdown"]


async def test_drain_refuses_newcomers_and_lets_calls_go_on(make_config, make_client):
    config = make_config(server={"shutdown_retry_after_seconds": 7})
    http = await make_client(config)
    app = http.server.app
    room_id = await create_room(http)
    token = issue_token(app[API_SECRET], "tests")
    async with clients(http, room_id, 2) as (a, b):
        await b.wait_decoded((a.peer_id, "camera"), frames=3)
        draining = asyncio.ensure_future(drain(app, config, 30.0, "SIGTERM: shutting down"))
        for client in (a, b):
            notice = await client.wait_for(lambda m: m["type"] == "server-shutdown")
            assert notice == {"type": "server-shutdown", "retry_after": 7}

        health = await http.get("/health")
        assert health.status == 503
        body = await health.json()
        assert body["status"] == "draining"
        assert body["error"] == {"code": "DRAINING", "message": "SIGTERM: shutting down"}
        assert body["peers"] == 2

        created = await http.post("/api/rooms/create", headers={"Authorization": f"Bearer {token}"})
        assert created.status == 503
        assert created.headers["Retry-After"] == "7"
        assert (await created.json())["error"]["code"] == "SHUTTING_DOWN"
        assert (await http.get(f"/api/rooms/{room_id}")).status == 200  # lookups still work

        late = RtcClient(base_url(http), room_id, "Late")
        try:
            await late.connect()
            await late.send({"type": "join", "name": "Late", "publish": []})
            reply = await late.wait_for(lambda m: True)
            assert reply == {"type": "server-shutdown", "retry_after": 7}
            await eventually(lambda: late.close_code is not None, what="late socket closed")
            assert late.close_code == 1001
        finally:
            await late.close()

        # The call goes on during the drain.
        received = b.received[b.mid_of((a.peer_id, "camera"))]
        decoded = received.decoded
        await eventually(lambda: received.decoded > decoded + 10, what="frames during the drain")
        assert not draining.done()
        # The drain ends as soon as the last peer leaves, not after 30 s.
        for client in (a, b):
            await client.send({"type": "leave"})
        await asyncio.wait_for(draining, scaled(5))


async def test_a_join_in_flight_when_the_drain_begins_is_refused(
    make_config, make_client, monkeypatch
):
    """A join still waiting for the registry when the drain begins gets server-shutdown and
    close 1001, not `joined`."""
    config = make_config(server={"shutdown_retry_after_seconds": 7})
    http = await make_client(config)
    app = http.server.app
    room_id = await create_room(http)
    registry = app[REGISTRY]
    looking_up, answer = asyncio.Event(), asyncio.Event()
    get = registry.get

    async def slow_get(room_id: str):
        looking_up.set()
        await answer.wait()
        return await get(room_id)

    monkeypatch.setattr(registry, "get", slow_get)
    ws = await http.ws_connect(f"/ws/{room_id}")
    try:
        await ws.send_json({"type": "join", "name": "Late", "publish": []})
        await asyncio.wait_for(looking_up.wait(), scaled(5))
        await asyncio.wait_for(drain(app, config, 30.0, "SIGTERM: shutting down"), scaled(5))
        answer.set()
        assert await receive_json(ws) == {"type": "server-shutdown", "retry_after": 7}
        await expect_close(ws, 1001)
        assert app[ROOMS].peer_count == 0
    finally:
        await ws.close()


@dataclass
class ServerProcess:
    proc: subprocess.Popen[str]
    client: RtcClient  # joined and connected
    stderr: str = ""


@asynccontextmanager
async def _server_with_a_peer(tmp_path: Path, drain_seconds: float) -> AsyncIterator[ServerProcess]:
    """A real `kaamos-sfu` process with one aiortc peer in a call; on exit the peer is
    closed, the process killed if it still runs, and its stderr collected."""
    configure_ice(["127.0.0.1"])  # this process's aiortc peers gather on loopback too
    port = free_port()
    config = write_config(tmp_path, port=port)
    text = config.read_text().replace(
        "[server]\n",
        f"[server]\ndrain_seconds = {drain_seconds}\nshutdown_retry_after_seconds = 2\n",
    )
    config.write_text(text + f"[auth]\napi_secret = '{SECRET}'\n")
    proc = start_server(tmp_path, "--config", str(config))
    url = f"http://127.0.0.1:{port}"
    server = ServerProcess(proc, RtcClient(url, "", "Alice"))
    try:
        await asyncio.to_thread(poll_health, port, proc)
        server.client.room_id = await _create_room(url)
        assert (await server.client.join())["type"] == "joined"
        await eventually(lambda: server.client.pc.connectionState == "connected", what="connected")
        yield server
    finally:
        await server.client.close()
        if proc.poll() is None:
            proc.kill()
        server.stderr = proc.communicate(timeout=TIMEOUT)[1]


async def _create_room(url: str) -> str:
    headers = {"Authorization": f"Bearer {issue_token(SECRET, 'tests')}"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{url}/api/rooms/create", headers=headers) as response,
    ):
        assert response.status == 201
        return str((await response.json())["room_id"])


async def _wait_exit(proc: subprocess.Popen[str], timeout: float) -> float:
    """Seconds until the process exits; fails after `timeout`."""
    start = time.monotonic()
    while proc.poll() is None:
        assert time.monotonic() - start < timeout, "the server did not exit in time"
        await asyncio.sleep(0.05)
    return time.monotonic() - start


async def test_sigterm_tells_the_peer_waits_the_drain_and_exits_0(tmp_path: Path):
    drain_seconds = 3.0
    async with _server_with_a_peer(tmp_path, drain_seconds) as server:
        client = server.client
        server.proc.send_signal(signal.SIGTERM)
        notice = await client.wait_for(lambda m: m["type"] == "server-shutdown")
        assert notice == {"type": "server-shutdown", "retry_after": 2}
        elapsed = await _wait_exit(server.proc, drain_seconds + TIMEOUT)
        assert drain_seconds - 0.5 <= elapsed, "the peer was cut off before the drain time"
        assert elapsed <= drain_seconds + 6
        await eventually(lambda: client.close_code is not None, what="socket closed")
        assert client.close_code == 1001
    assert server.proc.returncode == 0, server.stderr
    events = [json.loads(line)["event"] for line in server.stderr.splitlines()]
    assert events.index("drain started") < events.index("drain ended") < events.index("stopped")


async def test_sigint_stops_at_once_with_a_peer_connected(tmp_path: Path):
    async with _server_with_a_peer(tmp_path, drain_seconds=60.0) as server:
        server.proc.send_signal(signal.SIGINT)
        assert await _wait_exit(server.proc, TIMEOUT) < 10
        notice = await server.client.wait_for(lambda m: m["type"] == "server-shutdown")
        assert notice["retry_after"] == 2
    assert server.proc.returncode == 0, server.stderr


async def test_health_is_503_until_startup_finishes(make_config):
    """Before its startup hooks have run (registry, rooms) the app is not ready."""
    from aiohttp.test_utils import make_mocked_request

    from kaamos_sfu.app import create_app
    from kaamos_sfu.appkeys import LIFECYCLE
    from kaamos_sfu.lifecycle import Phase
    from kaamos_sfu.room import RoomManager
    from kaamos_sfu.web.api import health

    app = create_app(make_config())
    assert app[LIFECYCLE].phase is Phase.STARTING
    app[ROOMS] = RoomManager(make_config(), registry=None, node=None)  # type: ignore[arg-type]
    response = await health(make_mocked_request("GET", "/health", app=app))
    assert response.status == 503
    assert json.loads(response.body)["error"] == {"code": "STARTING", "message": "starting up"}


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
async def test_rooms_survive_a_restart(tmp_path: Path, signum: signal.Signals) -> None:
    """A room made before SIGTERM, or before SIGKILL mid-call (in-memory registry), exists on
    the restarted process: its lookup answers 200 and two clients rejoin and see each other."""
    async with _server_with_a_peer(tmp_path, drain_seconds=0.0) as server:
        room_id = server.client.room_id
        server.proc.send_signal(signum)  # SIGKILL: while the peer's media flows
        await _wait_exit(server.proc, TIMEOUT)
    expected = 0 if signum == signal.SIGTERM else -signal.SIGKILL
    assert server.proc.returncode == expected, server.stderr
    port = free_port()
    config = tmp_path / "test.toml"
    config.write_text(re.sub(r"port = \d+", f"port = {port}", config.read_text()))
    proc = start_server(tmp_path, "--config", str(config))
    url = f"http://127.0.0.1:{port}"
    back = [RtcClient(url, room_id, name) for name in ("Back", "Again")]
    try:
        await asyncio.to_thread(poll_health, port, proc)
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{url}/api/rooms/{room_id}") as response,
        ):
            assert response.status == 200, await response.text()
        for client in back:
            assert (await client.join())["type"] == "joined"
        a, b = back
        await b.wait_decoded((a.peer_id or "", "camera"), frames=3)
        await a.wait_decoded((b.peer_id or "", "camera"), frames=3)
    finally:
        await asyncio.gather(*(client.close() for client in back))
        proc.terminate()
        proc.communicate(timeout=TIMEOUT)
