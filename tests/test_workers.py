"""`kaamos-sfu serve --workers N`: N processes sharing a real redis-server."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from cluster_support import API_SECRET, cluster_env
from redis_support import RedisServer, free_port, stop_process

from kaamos_sfu.auth import issue_token
from kaamos_sfu.cli import main
from kaamos_sfu.redis_registry import RedisRegistry
from kaamos_sfu.workers import worker_argv

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "--workers needs cluster.redis_url"),
        (
            {
                "KAAMOS_CLUSTER_REDIS_URL": "redis://127.0.0.1:1/0",
                "KAAMOS_CLUSTER_NODE_URL": "https://sfu.example.org",
            },
            "--workers needs {port} in cluster.node_url",
        ),
        (
            {
                "KAAMOS_CLUSTER_REDIS_URL": "redis://127.0.0.1:1/0",
                "KAAMOS_SERVER_PUBLIC_URL": "https://meet.example.org",
            },
            "needs cluster.node_url with {port}",
        ),
        (
            {"KAAMOS_CLUSTER_REDIS_URL": "redis://127.0.0.1:1/0", "KAAMOS_SERVER_PORT": "65535"},
            "exceed 65535",
        ),
    ],
)
def test_workers_refuse_a_config_they_cannot_run(
    env: dict[str, str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--workers without Redis, or without a distinct address per worker, stops with a
    message and exit status 2 before starting anything."""
    monkeypatch.chdir(tmp_path)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--workers", "2"])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "kaamos-state").exists()


def test_worker_argv_overrides_port_and_workers() -> None:
    """A worker runs the supervisor's command with its own port and one worker."""
    argv = worker_argv(["serve", "--config", "c.toml", "--port", "9000", "--workers", "4"], 9002)
    assert argv[1:] == [
        "-m",
        "kaamos_sfu",
        "serve",
        "--config",
        "c.toml",
        "--port",
        "9000",
        "--workers",
        "4",
        "--port",
        "9002",
        "--workers",
        "1",
    ]


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def start_supervisor(tmp_path: Path, redis: RedisServer, port: int) -> subprocess.Popen[bytes]:
    """`kaamos-sfu serve --workers 2 --port PORT`, its log in tmp_path/workers.log."""
    with open(tmp_path / "workers.log", "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "kaamos_sfu", "serve", "--workers", "2", "--port", str(port)],
            cwd=tmp_path,
            env=cluster_env(redis, tmp_path / "state"),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def two_free_ports() -> int:
    """A port P with P+1 free too."""
    while True:
        port = free_port()
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port


async def test_two_workers_share_rooms_restart_and_stop(tmp_path: Path) -> None:
    """--workers 2 serves on PORT and PORT+1 as two nodes; a room made on one is routed by
    the other; a killed worker is restarted as a new node; SIGTERM stops the supervisor
    and its workers."""
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    port = two_free_ports()
    urls = {f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port + 1}"}
    supervisor = start_supervisor(tmp_path, redis, port)
    view = RedisRegistry(redis.url, ttl_seconds=3600)
    http = aiohttp.ClientSession()

    async def nodes() -> dict[str, str]:
        return {n.url: n.node_id for n in await view.nodes()}

    async def until(condition: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not await condition():
            if time.monotonic() > deadline:
                log = (tmp_path / "workers.log").read_text(errors="replace")
                raise AssertionError(f"timed out waiting for {what}\n{log[-5000:]}")
            await asyncio.sleep(0.1)

    try:

        async def both_registered() -> bool:
            return set(await nodes()) == urls

        await until(both_registered, 30, "both workers in the node set")
        token = issue_token(API_SECRET, "tests")
        async with http.post(
            f"http://127.0.0.1:{port}/api/rooms/create",
            headers={"Authorization": f"Bearer {token}"},
        ) as response:
            assert response.status == 201
            room_id = (await response.json())["room_id"]
        answers = set()
        for url in urls:
            async with http.get(f"{url}/api/rooms/{room_id}") as response:
                assert response.status == 200
                answers.add((await response.json())["signaling_url"])
        assert len(answers) == 1
        assert answers.pop().removesuffix(f"/ws/{room_id}") in {
            u.replace("http", "ws") for u in urls
        }

        before = await nodes()
        workers = children(supervisor.pid)
        assert len(workers) == 2
        os.kill(workers[0], signal.SIGKILL)

        async def replaced() -> bool:
            now = await nodes()
            return set(now) == urls and len(set(now.values()) - set(before.values())) == 1

        await until(replaced, 30, "the killed worker to come back as a new node")
        assert workers[0] not in children(supervisor.pid)

        workers = children(supervisor.pid)
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(40) == 0
        for pid in workers:
            assert not Path(f"/proc/{pid}").exists()
        for url in urls:
            with pytest.raises(aiohttp.ClientConnectionError):
                await http.get(f"{url}/health")
    finally:
        stop_process(supervisor)
        await http.close()
        await view.close()
        redis.stop()
