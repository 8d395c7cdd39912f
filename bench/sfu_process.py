"""One Kaamos server process on 127.0.0.1 (bench/inspected_server.py), for the soak and the
loaded-client runs: start, create rooms, read its stats, stop."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
from timing import scaled

from kaamos_sfu.rtc_bridge import configure_ice
from kaamos_sfu.web.auth import issue_token

from . import ROOT
from .servers import free_port, wait_http

SECRET = "a-bench-api-secret-that-is-long-enough-0"


class SfuProcess:
    def __init__(self, workdir: Path, settings: str = "") -> None:
        """`settings`: more config.toml sections for this run."""
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = workdir / "kaamos.toml"
        self.config.write_text(
            f'[server]\nhost = "127.0.0.1"\nport = {self.port}\ndrain_seconds = 0.0\n'
            f'state_dir = "{workdir / "state"}"\n[auth]\napi_secret = "{SECRET}"\n'
            f'[ice]\nhost_addresses = ["127.0.0.1"]\n[log]\nlevel = "info"\n{settings}'
        )
        self.log_path = workdir / "kaamos.log"
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        # The clients of this process gather on loopback too (aioice skips it otherwise).
        configure_ice(["127.0.0.1"])
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(  # noqa: ASYNC220 - a fork and exec; it runs on its own
                [sys.executable, "-m", "bench.inspected_server", "--config", str(self.config)],
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        # The soak and loaded tests wait as long as the tests' factor says (tests/timing.py).
        await asyncio.to_thread(wait_http, self.url + "/health", self.process, scaled(20))

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    async def create_room(self, http: aiohttp.ClientSession) -> str:
        headers = {"Authorization": f"Bearer {issue_token(SECRET, 'bench')}"}
        async with http.post(f"{self.url}/api/rooms/create", headers=headers) as response:
            assert response.status == 201, await response.text()
            return str((await response.json())["room_id"])

    async def stats(self, http: aiohttp.ClientSession) -> dict[str, Any]:
        """RSS, fds, tasks and per-peer objects alive, after a garbage collection."""
        async with http.get(f"{self.url}/_bench/stats") as response:
            body: dict[str, Any] = await response.json()
            return body

    def log_events(self, event: str) -> list[str]:
        """The server's JSON log lines for one event, as text."""
        return [line for line in self.log_path.read_text().splitlines() if f'"{event}"' in line]
