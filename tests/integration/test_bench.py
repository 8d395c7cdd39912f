"""The benchmark's quick mode still runs end to end against all three systems (a smoke
test, not a measurement: the windows are far too short for the figures to mean much)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from call_support import send_wrong_node
from timing import scaled

from bench.kaamos_client import join_room
from bench.measure import saturation
from bench.servers import Janus, Kaamos

ROOT = Path(__file__).resolve().parents[2]

HEALTHY = {
    "sfu_cpu_pct_of_core": 20.0,
    "client_cpu_pct_of_core": 40.0,
    "loss_pct": 0.0,
    "expected_ratio": 1.0,
    "udp_drops_sfu": 0,
    "udp_drops_clients": 0,
}


@pytest.mark.parametrize(
    ("system", "changes", "expected"),
    [
        ("kaamos", {}, None),
        ("kaamos", {"sfu_cpu_pct_of_core": 95.0}, "sfu"),  # one process: one core at most
        ("janus", {"sfu_cpu_pct_of_core": 130.0}, None),  # threads: more than one core is fine
        ("kaamos", {"loss_pct": 3.0, "udp_drops_clients": 500}, "clients"),
        ("kaamos", {"loss_pct": 3.0, "udp_drops_sfu": 500, "udp_drops_clients": 20}, "sfu"),
        ("janus", {"expected_ratio": 0.8}, "clients"),  # behind, no drops: the busier side
        ("janus", {"expected_ratio": 0.8, "sfu_cpu_pct_of_core": 150.0}, "sfu"),
        ("kaamos", {"loss_pct": 0.5}, None),
    ],
)
def test_saturation_names_the_side_that_ran_out(
    tmp_path: Path, system: str, changes: dict[str, float], expected: str | None
) -> None:
    """A full sweep stops on saturation, and the report says which side it was."""
    under_test = Kaamos(tmp_path) if system == "kaamos" else Janus(tmp_path)
    assert saturation({**HEALTHY, **changes}, under_test) == expected


@pytest.mark.timeout(180)
def test_quick_mode_measures_every_system(tmp_path: Path) -> None:
    """One room of 4 on Kaamos, Janus and the naive relay: packets forwarded on every
    track, joins timed, CPU read, and the JSON, Markdown and PNG written."""
    if shutil.which("janus") is None:
        pytest.skip("janus is not installed (tests/run.sh installs it as root)")
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "quick",
            "--rooms",
            "1",
            "--warmup",
            "0.5",
            "--window",
            "1.5",
            "--max-minutes",
            "2",
            "--out",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=scaled(170),
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    run = json.loads((tmp_path / "results.json").read_text())
    results = {r["system"]: r for r in run["results"]}
    assert set(results) == {"kaamos", "janus", "relay"}
    for name, result in results.items():
        assert "error" not in result, (name, result)
        assert result["participants"] == 4
        assert result["tracks"] == 24, (name, result)  # each of 4 receives 3 x (audio, video)
        assert result["dead_tracks"] == 0, (name, result)
        assert result["forwarded_pps"] > 0 and result["us_per_fwd_pkt"] > 0
        assert result["join_to_first_packet_ms"]["median"] is not None
    assert results["kaamos"]["latency_samples"] > 0
    assert {r["system"] for r in run["ratios"]} == {"janus", "relay"}
    assert "| kaamos | 1 |" in (tmp_path / "results.md").read_text()
    assert (tmp_path / "results.png").read_bytes().startswith(b"\x89PNG")


async def _fake_nodes(signaling_url_field: bool) -> tuple[list[TestServer], list[str]]:
    """Two nodes: A holds no room and redirects to B with WRONG_NODE; B accepts the join.
    A's API names B as the room's signaling_url, or leaves the field out; every WebSocket
    visit is logged."""
    visits: list[str] = []
    servers: list[TestServer] = []

    async def room(request: web.Request) -> web.Response:
        body: dict[str, object] = {"room_id": "AbCdEf1234"}
        if signaling_url_field:
            body["signaling_url"] = str(servers[1].make_url("/ws/AbCdEf1234")).replace("http", "ws")
        return web.json_response(body)

    def node(name: str, redirect_to: int | None) -> web.Application:
        async def socket(request: web.Request) -> web.WebSocketResponse:
            visits.append(f"{name}{request.path}")
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            join = await ws.receive_json()
            if redirect_to is None:
                await ws.send_json(
                    {"type": "joined", "peer_id": "P", "peers": [], "name": join["name"]}
                )
            else:
                target = str(servers[redirect_to].make_url("/ws/AbCdEf1234")).replace("http", "ws")
                await send_wrong_node(ws, target)
            return ws

        app = web.Application()
        app.router.add_get("/api/rooms/{room_id}", room)
        app.router.add_get("/ws/{room_id}", socket)
        return app

    servers.extend(
        [TestServer(node("A", 1), host="127.0.0.1"), TestServer(node("B", None), host="127.0.0.1")]
    )
    for server in servers:
        await server.start_server()
    return servers, visits


@pytest.mark.parametrize(
    ("signaling_url_field", "expected"),
    [(True, ["B/ws/AbCdEf1234"]), (False, ["A/ws/AbCdEf1234", "B/ws/AbCdEf1234"])],
)
async def test_kaamos_client_finds_the_node_that_holds_the_room(
    signaling_url_field: bool, expected: list[str]
) -> None:
    """The bench's Kaamos client asks the API where to signal (falling back to /ws/<id>
    when the answer has no signaling_url) and follows WRONG_NODE to the right node."""
    servers, visits = await _fake_nodes(signaling_url_field)
    try:
        async with aiohttp.ClientSession() as http:
            base = str(servers[0].make_url("")).rstrip("/")
            ws, reply = await join_room(http, base, "AbCdEf1234", {"type": "join", "name": "x"})
            await ws.close()
        assert reply["type"] == "joined"
        assert visits == expected
    finally:
        for server in servers:
            await server.close()
