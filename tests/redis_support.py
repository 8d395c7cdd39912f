"""A real redis-server for tests: a free loopback port, a temporary directory, no persistence."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

from ports import free_port
from timing import scaled

START_TIMEOUT = scaled(10.0)

class RedisServer:
    """One redis-server process; `stop` and `start` again keep the port (a Redis restart)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
                "--logfile",
                str(self.directory / "redis.log"),
            ],
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while not self.ping():
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = (self.directory / "redis.log").read_text(errors="replace")
                self.stop()
                raise RuntimeError(f"redis-server did not start on {self.port}:\n{log}")
            time.sleep(0.02)

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=scaled(1)) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def command(self, *args: str) -> bytes:
        """Run one command (inline protocol) and return the raw reply."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=scaled(2)) as s:
            s.sendall(" ".join(args).encode() + b"\r\n")
            return s.recv(65536)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None


def stop_process(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout` (scaled)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(scaled(timeout))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(scaled(timeout))
