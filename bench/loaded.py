"""Four people in a call on a machine that has no CPU to spare: nobody may be removed.

A server process holds one room; four aiortc clients, each in a process of its own
(bench/loaded_client.py, as each person has a device of their own), join it, publishing
camera and microphone. Then busy loops (two per CPU, each its own process, each ending by
itself after the given time) take the machine, so that the clients answer pings, ICE
consent checks and media late, as a busy phone does. Nobody may be removed meanwhile.
Near the end one client vanishes for real (no media, no ICE, no pongs): the server must
still notice it within its media timeout.

    python -m bench loaded --minutes 5
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from timing import scaled

from . import ROOT
from .sfu_process import SfuProcess

CLIENTS = 4
VANISHED_REMOVAL_LIMIT = 10.0  # rooms.peer_timeout_seconds: the documented bound
BUSY_LOOP = "import sys, time\nend = time.monotonic() + float(sys.argv[1])\nwhile time.monotonic() < end:\n    pass\n"


@dataclass
class LoadedResult:
    seconds: float
    busy_loops: int
    removals: list[str] = field(default_factory=list)  # "peer left" lines of the server
    min_packets_per_second: dict[str, float] = field(default_factory=dict)  # per client
    vanished_removed_after: float | None = None  # seconds; None: not removed in time

    def problems(self) -> list[str]:
        found = []
        if self.removals:
            found.append(f"{len(self.removals)} removed under load: {self.removals}")
        if self.vanished_removed_after is None:
            found.append("the client that vanished was not removed")
        elif self.vanished_removed_after > VANISHED_REMOVAL_LIMIT + 1.0:
            found.append(
                f"the vanished client was removed after {self.vanished_removed_after:.1f} s"
            )
        return found

    def report(self) -> str:
        rates = ", ".join(f"{k} {v:.0f}" for k, v in self.min_packets_per_second.items())
        vanished = (
            f"{self.vanished_removed_after:.1f} s"
            if self.vanished_removed_after is not None
            else "not removed"
        )
        return (
            f"{CLIENTS} clients, {self.busy_loops} busy loops for {self.seconds:.0f} s\n"
            f"removed while alive: {len(self.removals)}\n"
            f"lowest packets/s received from the others, per client (10 s windows): {rates}\n"
            f"a client that vanished under load was removed after: {vanished}\n"
            f"problems: {'; '.join(self.problems()) or 'none'}\n"
        )


class ClientProcess:
    """A participant in a process of its own (bench/loaded_client.py), as last reported."""

    def __init__(self, process: asyncio.subprocess.Process, name: str) -> None:
        self.process = process
        self.name = name
        self.peer_id: str | None = None
        self.packets: dict[str, int] = {}  # from each other participant
        self.left: list[str] = []
        self.close_code: int | None = None
        self._reader = asyncio.ensure_future(self._read())

    @classmethod
    async def start(cls, url: str, room_id: str, name: str) -> ClientProcess:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.loaded_client",
            url,
            room_id,
            name,
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        return cls(process, name)

    async def _read(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            status = json.loads(line)
            self.peer_id = status["peer_id"]
            self.packets, self.left = status["packets"], status["left"]
            self.close_code = status["close_code"]

    def vanish(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(b"vanish\n")

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        self._reader.cancel()


async def loaded(seconds: float, workdir: Path, busy_loops: int | None = None) -> LoadedResult:
    """Keep the call going under `busy_loops` busy processes (default: two per CPU) for
    `seconds`; the last 15 s of them, one client vanishes."""
    loops = busy_loops if busy_loops is not None else 2 * (os.cpu_count() or 1)
    result = LoadedResult(seconds=seconds, busy_loops=loops)
    server = SfuProcess(workdir)
    clients: list[ClientProcess] = []
    burners: list[subprocess.Popen[bytes]] = []
    try:
        await server.start()
        async with aiohttp.ClientSession() as http:
            room_id = await server.create_room(http)
        for name in "ABCD"[:CLIENTS]:
            clients.append(await ClientProcess.start(server.url, room_id, name))
        await _all_receiving(clients)
        burners = [
            subprocess.Popen([sys.executable, "-c", BUSY_LOOP, str(seconds)])  # noqa: ASYNC220
            for _ in range(loops)
        ]
        await _watch(clients, seconds, result)
        # Before anyone leaves on purpose: every departure so far is a removal.
        vanished = clients[-1].peer_id or ""
        result.removals = [line for line in server.log_events("peer left") if vanished not in line]
    finally:
        for burner in burners:
            burner.kill()
        await asyncio.gather(*(c.stop() for c in clients), return_exceptions=True)
        server.stop()
    return result


async def _all_receiving(clients: list[ClientProcess], timeout: float = 30.0) -> None:
    """Until every client receives media from every other one."""
    deadline = time.monotonic() + scaled(timeout)
    while not all(
        len([n for n in c.packets.values() if n >= 5]) == len(clients) - 1 for c in clients
    ):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the call did not start: {[c.packets for c in clients]}")
        await asyncio.sleep(0.2)


async def _watch(clients: list[ClientProcess], seconds: float, result: LoadedResult) -> None:
    """Sample what each client receives every 10 s; make the last client vanish 15 s
    before the end and time its removal as the others see it."""
    keep, ghost = clients[:-1], clients[-1]
    started = time.monotonic()
    vanish_at = started + max(0.0, seconds - 15.0)
    last = {c.name: dict(c.packets) for c in clients}
    next_sample = started + 10.0
    vanished_at: float | None = None
    while time.monotonic() < started + seconds:
        await asyncio.sleep(0.2)
        now = time.monotonic()
        if vanished_at is None and now >= vanish_at:
            ghost.vanish()
            vanished_at = now
        present = [c for c in keep if c.close_code is None]  # a removed one sees nothing
        seen_gone = vanished_at is not None and all(ghost.peer_id in c.left for c in present)
        if seen_gone and vanished_at is not None and result.vanished_removed_after is None:
            result.vanished_removed_after = now - vanished_at
        if now >= next_sample:
            for client in clients if vanished_at is None else keep:
                before = last[client.name]  # per sender: one that left counts no more
                got = sum(n - before[o] for o, n in client.packets.items() if o in before)
                rate = got / 10.0
                low = result.min_packets_per_second.get(client.name, rate)
                result.min_packets_per_second[client.name] = min(low, rate)
                last[client.name] = dict(client.packets)
            next_sample += 10.0
