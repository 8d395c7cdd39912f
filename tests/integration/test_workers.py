"""`kaamos-sfu serve --workers N`: N processes sharing a real redis-server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import NamedTuple

import aiohttp
import pytest
from call_support import receive_json
from cluster_support import API_SECRET, cluster_env
from fake_clock import FakeClock
from ports import free_port
from redis_support import RedisServer, stop_process
from timing import eventually, scaled

from kaamos_sfu.cli import main
from kaamos_sfu.cluster import workers
from kaamos_sfu.cluster.redis_registry import RedisRegistry
from kaamos_sfu.cluster.workers import MAX_STARTUP_FAILURES, Worker, listens_on, worker_argv
from kaamos_sfu.web.auth import issue_token

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
    # With a cluster.node_id, each worker gets its own: after the supervisor's --set.
    argv = worker_argv(["serve", "--set", "cluster.node_id=box"], 9001, "box-1")
    assert argv[3:] == [
        "serve",
        "--set",
        "cluster.node_id=box",
        "--port",
        "9001",
        "--workers",
        "1",
        "--set",
        "cluster.node_id=box-1",
    ]


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def start_supervisor(
    tmp_path: Path, redis: RedisServer, port: int, *args: str, **env: str
) -> subprocess.Popen[bytes]:
    """`kaamos-sfu serve --workers 2 --port PORT ARGS...` in a session of its own (as a
    service or a terminal would run it), its log in tmp_path/workers.log."""
    with open(tmp_path / "workers.log", "wb") as log:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kaamos_sfu",
                "serve",
                "--workers",
                "2",
                "--port",
                str(port),
                *args,
            ],
            cwd=tmp_path,
            env=cluster_env(redis, tmp_path / "state", **env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def supervisor_log(tmp_path: Path) -> str:
    return (tmp_path / "workers.log").read_text(errors="replace")


async def create_room(http: aiohttp.ClientSession, port: int) -> str:
    token = issue_token(API_SECRET, "tests")
    async with http.post(
        f"http://127.0.0.1:{port}/api/rooms/create", headers={"Authorization": f"Bearer {token}"}
    ) as response:
        assert response.status == 201
        return str((await response.json())["room_id"])


async def until(
    condition: Callable[[], Awaitable[bool]], timeout: float, what: str, tmp_path: Path
) -> None:
    """`eventually`, with the supervisor's log in the failure."""
    await eventually(
        condition, timeout, lambda: f"{what}\n{supervisor_log(tmp_path)[-5000:]}", poll=0.1
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


class Service(NamedTuple):
    supervisor: subprocess.Popen[bytes]
    port: int  # the first worker's; the second's is port + 1
    view: RedisRegistry  # of the node set
    http: aiohttp.ClientSession


@asynccontextmanager
async def service(tmp_path: Path, *args: str, **env: str) -> AsyncIterator[Service]:
    """`kaamos-sfu serve --workers 2 ARGS` on a redis-server of its own; all stopped at
    the end."""
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    port = two_free_ports()
    supervisor = start_supervisor(tmp_path, redis, port, *args, **env)
    view = RedisRegistry(redis.url, ttl_seconds=3600)
    http = aiohttp.ClientSession()
    try:
        yield Service(supervisor, port, view, http)
    finally:
        stop_process(supervisor)
        await http.close()
        await view.close()
        redis.stop()


async def test_two_workers_share_rooms_restart_and_stop(tmp_path: Path) -> None:
    """--workers 2 serves on PORT and PORT+1 as two nodes; a room made on one is routed by
    the other; a killed worker is restarted as a new node; SIGTERM stops the supervisor
    and its workers."""
    async with service(tmp_path) as (supervisor, port, view, http):
        urls = {f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port + 1}"}

        async def nodes() -> dict[str, str]:
            return {n.url: n.node_id for n in await view.nodes()}

        async def both_registered() -> bool:
            return set(await nodes()) == urls

        await until(both_registered, 30, "both workers in the node set", tmp_path)
        room_id = await create_room(http, port)
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

        await until(replaced, 30, "the killed worker to come back as a new node", tmp_path)
        assert workers[0] not in children(supervisor.pid)

        workers = children(supervisor.pid)
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(scaled(40)) == 0
        for pid in workers:
            assert not Path(f"/proc/{pid}").exists()
        for url in urls:
            with pytest.raises(aiohttp.ClientConnectionError):
                await http.get(f"{url}/health")


DRAIN_SECONDS = 4.0


@pytest.mark.parametrize("delivery", ["process group", "every process"])
async def test_workers_drain_when_the_whole_service_gets_sigterm(
    delivery: str, tmp_path: Path
) -> None:
    """SIGTERM to the supervisor's whole process group (a terminal, `kill -TERM -PGID`) or
    to every process of the service (systemd KillMode=control-group): a peer in a call gets
    server-shutdown at once, and its socket closes (1001) only after server.drain_seconds.
    With --set cluster.node_id=box the workers are the nodes box-0 and box-1."""
    async with service(
        tmp_path,
        "--set",
        "cluster.node_id=box",
        KAAMOS_SERVER_DRAIN_SECONDS=str(DRAIN_SECONDS),
    ) as (supervisor, port, view, http):

        async def both_registered() -> bool:
            return {n.node_id for n in await view.nodes()} == {"box-0", "box-1"}

        await until(both_registered, 30, "the nodes box-0 and box-1", tmp_path)
        room_id = await create_room(http, port)
        async with http.get(f"http://127.0.0.1:{port}/api/rooms/{room_id}") as response:
            signaling_url = (await response.json())["signaling_url"]
        ws = await http.ws_connect(signaling_url)
        await ws.send_json({"type": "join", "name": "A", "publish": []})
        assert (await receive_json(ws, 10))["type"] == "joined"

        start = time.monotonic()
        if delivery == "process group":
            os.killpg(supervisor.pid, signal.SIGTERM)
        else:
            for pid in [supervisor.pid, *children(supervisor.pid)]:
                os.kill(pid, signal.SIGTERM)
        shutdown = await receive_json(ws, 10)
        assert shutdown["type"] == "server-shutdown", shutdown
        message = await ws.receive(timeout=DRAIN_SECONDS + scaled(20))
        took = time.monotonic() - start
        assert message.type == aiohttp.WSMsgType.CLOSE, message
        assert ws.close_code == 1001
        assert took >= DRAIN_SECONDS - 0.5, f"closed {took:.1f} s after SIGTERM"
        assert supervisor.wait(scaled(30)) == 0


# How long the supervisor may go without a new failed start of the blocked worker, or without
# exiting after the last one: one restart delay (at most 8 s before the last) and one start
# that fails, or stopping the other worker. Generous, for a loaded machine where a start can
# take 20 s; the whole wait is bounded by the count of starts, not by a total. (Scaled where
# it is waited for; the test's timeout mark is scaled by tests/conftest.py.)
STEP_SECONDS = 60.0


def wait_until_it_gives_up(supervisor: subprocess.Popen[bytes], tmp_path: Path, port: int) -> int:
    """The supervisor's exit status once it exits; fails as soon as it starts the blocked
    worker more than MAX_STARTUP_FAILURES times, or makes no progress for STEP_SECONDS."""
    failed_start = f"cannot listen on 127.0.0.1:{port}"
    step = scaled(STEP_SECONDS)
    seen = 0
    deadline = time.monotonic() + step
    while (code := supervisor.poll()) is None:
        count = supervisor_log(tmp_path).count(failed_start)
        assert count <= MAX_STARTUP_FAILURES, (
            f"the supervisor did not give up after {MAX_STARTUP_FAILURES} failed starts\n"
            + supervisor_log(tmp_path)[-5000:]
        )
        if count > seen:
            seen, deadline = count, time.monotonic() + step
        assert time.monotonic() < deadline, (
            f"after {seen} failed starts, neither another nor an exit in {step:g} s\n"
            + supervisor_log(tmp_path)[-5000:]
        )
        time.sleep(0.2)
    return code


@pytest.mark.timeout(int(STEP_SECONDS * (MAX_STARTUP_FAILURES + 2)))
async def test_a_worker_that_cannot_start_stops_the_supervisor(tmp_path: Path) -> None:
    """A worker whose port is taken exits each time it starts, before it listens: after a
    few tries the supervisor says so, stops the other worker and exits 1 instead of
    retrying forever, however long each failed start takes (issue 12)."""
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    port = two_free_ports()
    blocker = socket.socket()
    try:
        blocker.bind(("127.0.0.1", port + 1))
        blocker.listen()
        supervisor = start_supervisor(tmp_path, redis, port)
        try:
            assert wait_until_it_gives_up(supervisor, tmp_path, port + 1) == 1
        finally:
            stop_process(supervisor)
        log = supervisor_log(tmp_path)
        assert "worker cannot start; stopping every worker" in log
        assert log.count(f"cannot listen on 127.0.0.1:{port + 1}") == MAX_STARTUP_FAILURES
        with pytest.raises(OSError):  # worker 0 was stopped too
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
    finally:
        blocker.close()
        redis.stop()


def python(code: str, *args: str) -> list[str]:
    return [sys.executable, "-c", code, *args]


EXIT_AT_ONCE = "import sys; sys.exit(1)"
LISTEN_UNTIL_KILLED = (
    "import socket, sys, time\n"
    "s = socket.socket()\n"
    "s.bind(('127.0.0.1', int(sys.argv[1])))\n"
    "s.listen()\n"
    "time.sleep(120)\n"
)


def stop_worker(worker: Worker) -> None:
    if worker.process is not None and worker.process.poll() is None:
        worker.process.kill()
        worker.process.wait()


def test_a_worker_that_fails_slowly_before_listening_still_cannot_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The cause of issue 12: on a loaded machine a worker whose port is taken took more than
    10 s to fail, and the supervisor took such a worker for one that had started and
    restarted it forever. However long a start takes to fail, it failed."""
    clock = FakeClock(now=1000.0)  # the time module of kaamos_sfu.cluster.workers
    monkeypatch.setattr(workers, "time", clock)
    worker = Worker(1, free_port(), python(EXIT_AT_ONCE))
    worker.start()
    try:
        for failures in range(1, MAX_STARTUP_FAILURES + 1):
            assert worker.process is not None
            worker.process.wait(scaled(30))
            clock.now += 100.0  # this failed start took 100 s
            if failures == MAX_STARTUP_FAILURES:
                assert not workers._supervise([worker])
                break
            assert workers._supervise([worker])  # exited: a restart is due
            assert worker.startup_failures == failures
            assert worker.restart_at is not None
            clock.now = worker.restart_at
            assert workers._supervise([worker])  # restarted
            assert worker.restart_at is None
        assert worker.startup_failures == MAX_STARTUP_FAILURES
    finally:
        stop_worker(worker)


def test_a_worker_that_listened_and_died_is_restarted_however_often(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A worker that dies after it listened on its port did start: it is restarted (with
    the backoff) each time, even when it dies at once, and never counts as unable to start."""
    clock = FakeClock(now=1000.0)  # the time module of kaamos_sfu.cluster.workers
    monkeypatch.setattr(workers, "time", clock)
    port = free_port()
    worker = Worker(1, port, python(LISTEN_UNTIL_KILLED, str(port)))
    worker.start()
    try:
        for _ in range(MAX_STARTUP_FAILURES + 1):
            deadline = time.monotonic() + scaled(30)
            while not worker.listened:
                assert time.monotonic() < deadline, "the worker was never seen listening"
                assert workers._supervise([worker])
                time.sleep(0.05)
            assert worker.process is not None
            worker.process.kill()
            worker.process.wait()
            clock.now += 0.5  # died half a second after it started
            assert workers._supervise([worker])
            assert worker.startup_failures == 0
            assert worker.restart_at is not None
            clock.now = worker.restart_at
            assert workers._supervise([worker])  # restarted
            assert not worker.listened
    finally:
        stop_worker(worker)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_listens_on_sees_only_the_process_own_listening_socket(host: str) -> None:
    """listens_on(pid, port) is True only while that process listens on the port: not
    while it is merely bound, not for another process (the one holding a taken port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.socket(family)
        sock.bind((host, 0))
    except OSError:
        pytest.skip(f"no {host} here")
    other = subprocess.Popen(python("import time; time.sleep(60)"))
    try:
        port = sock.getsockname()[1]
        assert listens_on(os.getpid(), port) is False  # bound, not listening
        sock.listen()
        assert listens_on(os.getpid(), port) is True
        assert listens_on(os.getpid(), free_port()) is False
        assert listens_on(other.pid, port) is False
        sock.close()
        assert listens_on(os.getpid(), port) is False
    finally:
        sock.close()
        other.kill()
        other.wait()
