"""`kaamos-sfu serve --workers N`: N server processes on one machine, one per core.

Python forwards media on one core per process, so a machine with more cores runs more
processes. Each worker is an ordinary node of a cluster (docs/scaling.md): its own HTTP
port (server.port + i), its own media sockets, and the shared Redis that routes every room
to the worker holding it. This supervisor only starts them, restarts one that dies, and
passes SIGTERM/SIGINT on; it serves nothing itself.

Each worker runs in its own session (process group), so that a signal sent to the
supervisor's whole group (Ctrl-C in a terminal, `kill -TERM -PGID`) reaches the workers
once, through the supervisor; PR_SET_PDEATHSIG still ends them if the supervisor dies.

A worker that exits before it ever listened on its port (its port is taken, say) failed to
start, however long that took: on a loaded machine its imports alone can take longer than
any fixed "startup time". The supervisor sees a worker listen in /proc (the worker's
sockets and its network namespace's TCP table), so the workers need not report anything.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType

from ..config import Config, ConfigError
from ..web.auth import load_or_create_secret

log = logging.getLogger(__name__)

POLL_SECONDS = 0.2
# A worker that dies is restarted after a delay that doubles up to this, reset once a
# worker has run for RESTART_RESET_SECONDS.
MAX_RESTART_DELAY = 30.0
RESTART_RESET_SECONDS = 60.0
# A worker that exits before it listened on its port, this many times in a row, cannot
# start (its port is taken, say): the supervisor stops the others and exits with
# FAILED_EXIT. Where /proc cannot tell whether it listened (not Linux), a worker that exits
# within STARTUP_SECONDS of starting is taken not to have.
MAX_STARTUP_FAILURES = 5
STARTUP_SECONDS = 10.0
FAILED_EXIT = 1
# Workers get server.drain_seconds plus this long to stop after the signal before they
# are killed (closing sockets and Redis takes a moment after the drain).
STOP_MARGIN_SECONDS = 10.0
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_TCP_LISTEN = "0A"  # the `st` column of /proc/net/tcp (include/net/tcp_states.h)


def check_workers(config: Config, count: int) -> None:
    """Raise ConfigError unless `count` workers can run with this configuration."""
    if not config.cluster.redis_url:
        raise ConfigError(
            "--workers needs cluster.redis_url: the workers share rooms through Redis"
        )
    if config.server.port + count - 1 > 65535:
        raise ConfigError(f"--workers {count}: ports from {config.server.port} exceed 65535")
    if config.cluster.node_url and "{port}" not in config.cluster.node_url:
        raise ConfigError(
            "--workers needs {port} in cluster.node_url: each worker has its own address"
        )
    if not config.cluster.node_url and config.server.public_url:
        raise ConfigError(
            "--workers with server.public_url needs cluster.node_url with {port}, "
            'e.g. "https://sfu.example.org/w/{port}": each worker has its own address'
        )


def worker_argv(argv: Sequence[str], port: int, node_id: str = "") -> list[str]:
    """The worker's command line: the supervisor's, with its own port, one worker and, when
    the supervisor has a cluster.node_id, its own node id (the last occurrence of an option
    or of a --set wins)."""
    own = ["--port", str(port), "--workers", "1"]
    if node_id:
        own += ["--set", f"cluster.node_id={node_id}"]
    return [sys.executable, "-m", "kaamos_sfu", *argv, *own]


@dataclass
class Worker:
    index: int
    port: int
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    restart_at: float | None = None
    delay: float = 1.0
    listened: bool = False  # seen listening on its port since it was last started
    startup_failures: int = 0  # exits before it listened, in a row

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # signals reach it through the supervisor only
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - the supervisor runs no threads
        )
        self.started = time.monotonic()
        self.restart_at = None
        self.listened = False
        log.info(
            "worker started",
            extra={"worker": self.index, "port": self.port, "pid": self.process.pid},
        )

    def check_listening(self, now: float) -> None:
        """Note whether the running worker listens on its port yet (once it has, it has)."""
        if self.listened or self.process is None:
            return
        seen = listens_on(self.process.pid, self.port)
        if seen is None:  # no /proc to tell: guess from how long it has run
            seen = now - self.started >= STARTUP_SECONDS
        self.listened = seen


def listens_on(pid: int, port: int) -> bool | None:
    """Whether process `pid` holds a TCP socket listening on `port` (on any address); None
    if /proc cannot tell (not Linux). False once the process is gone."""
    inodes: set[str] = set()
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}") as lines:
                next(lines, None)  # the header
                for line in lines:
                    fields = line.split()
                    # sl local_address rem_address st ... inode: local_address is
                    # ADDRESS:PORT in hex.
                    if (
                        len(fields) > 9
                        and fields[3] == _TCP_LISTEN
                        and int(fields[1].rpartition(":")[2], 16) == port
                    ):
                        inodes.add(f"socket:[{fields[9]}]")
        except FileNotFoundError:
            if not os.path.isdir("/proc/self/net"):
                return None
        except OSError:
            pass  # the process is gone, or no IPv6
    if not inodes:
        return False
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                return True
        except OSError:  # closed meanwhile
            continue
    return False


def _die_with_parent() -> None:
    """In the child: get SIGTERM if the supervisor dies (even by SIGKILL), so that no worker
    is left running without it (Linux only; elsewhere nothing)."""
    try:
        libc = ctypes.CDLL(None)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def run_workers(config: Config, argv: Sequence[str], count: int) -> int:
    """Start `count` workers and supervise them until SIGTERM or SIGINT (return 0) or until
    one keeps failing at startup (return FAILED_EXIT)."""
    check_workers(config, count)
    load_or_create_secret(config)  # once, so that the workers do not race to create it
    workers = []
    for index in range(count):
        port = config.server.port + index
        node_id = f"{config.cluster.node_id}-{index}" if config.cluster.node_id else ""
        workers.append(Worker(index, port, worker_argv(argv, port, node_id)))

    stopping: list[int] = []
    failed = False

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stopping.append(signum)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        for worker in workers:
            worker.start()
        while not stopping and not failed:
            failed = not _supervise(workers)
            time.sleep(POLL_SECONDS)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        # The same signal: SIGTERM drains the workers' calls, SIGINT stops them at once.
        _stop(
            workers,
            stopping[0] if stopping else signal.SIGTERM,
            config.server.drain_seconds + STOP_MARGIN_SECONDS,
        )
    return FAILED_EXIT if failed else 0


def _supervise(workers: list[Worker]) -> bool:
    """Restart workers that exited; False once one keeps failing at startup."""
    now = time.monotonic()
    for worker in workers:
        if worker.restart_at is not None:
            if now >= worker.restart_at:
                worker.start()
            continue
        assert worker.process is not None
        code = worker.process.poll()
        if code is None:
            worker.check_listening(now)
            continue
        if now - worker.started >= RESTART_RESET_SECONDS:
            worker.delay = 1.0
        if worker.listened:
            worker.startup_failures = 0
        else:
            worker.startup_failures += 1
        if worker.startup_failures >= MAX_STARTUP_FAILURES:
            log.error(
                "worker cannot start; stopping every worker",
                extra={
                    "worker": worker.index,
                    "port": worker.port,
                    "exit_code": code,
                    "failures": worker.startup_failures,
                    "ran_seconds": round(now - worker.started, 1),
                },
            )
            return False
        log.error(
            "worker exited; restarting",
            extra={"worker": worker.index, "exit_code": code, "restart_in": worker.delay},
        )
        worker.restart_at = now + worker.delay
        worker.delay = min(MAX_RESTART_DELAY, worker.delay * 2)
    return True


def _stop(workers: list[Worker], signum: int, timeout: float) -> None:
    running = [w.process for w in workers if w.process is not None and w.process.poll() is None]
    for process in running:
        process.send_signal(signum)
    deadline = time.monotonic() + timeout
    for process in running:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    log.info("workers stopped", extra={"workers": len(workers)})
