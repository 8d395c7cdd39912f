"""Churn soak: people join and leave one room many times; the server must not keep them.

A server process (bench/inspected_server.py) holds one room with a steady participant who
publishes camera and microphone. Each cycle a newcomer joins, publishing too, waits until
it receives the steady participant's video, and leaves (every other cycle with `leave`,
else by closing its socket and connection). At checkpoints the server reports its
resident memory, open file descriptors, asyncio tasks and the per-peer objects still
alive (after a garbage collection). After the last cycle the steady participant leaves too,
and nothing that belongs to a peer may be left.

    python -m bench soak --cycles 1000
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from rtc_client import RtcClient
from timing import scaled

from .sfu_process import SfuProcess

# Seconds for one newcomer to join, receive and leave (times KAAMOS_TEST_TIMEOUT_FACTOR,
# tests/timing.py, as every wait of the tests; unset, as in a bench run: 1).
CYCLE_TIMEOUT = scaled(15.0)
MAX_RSS_GROWTH = 0.05  # from the first checkpoint to the last


@dataclass
class Checkpoint:
    cycle: int
    seconds: float  # since the first cycle began
    rss_bytes: int
    fds: int
    tasks: int
    objects: dict[str, int]


@dataclass
class SoakResult:
    cycles: int
    checkpoints: list[Checkpoint] = field(default_factory=list)
    after_all_left: Checkpoint | None = None

    @property
    def rss_growth(self) -> float:
        """Resident memory growth from the first checkpoint to the last, as a fraction."""
        first, last = self.checkpoints[0], self.checkpoints[-1]
        return (last.rss_bytes - first.rss_bytes) / first.rss_bytes

    def rss_growth_per_cycle(self) -> float:
        first, last = self.checkpoints[0], self.checkpoints[-1]
        return (last.rss_bytes - first.rss_bytes) / max(1, last.cycle - first.cycle)

    def survivors(self) -> dict[str, int]:
        """Per-peer objects alive after everyone left (must be none)."""
        assert self.after_all_left is not None
        return {k: v for k, v in self.after_all_left.objects.items() if v}

    def problems(self, max_rss_growth: float = MAX_RSS_GROWTH) -> list[str]:
        first, last = self.checkpoints[0], self.checkpoints[-1]
        found = []
        if self.rss_growth > max_rss_growth:
            found.append(f"RSS grew {self.rss_growth:.1%} from cycle {first.cycle}")
        if self.survivors():
            found.append(f"alive after everyone left: {self.survivors()}")
        if last.fds > first.fds + 2:
            found.append(f"file descriptors {first.fds} -> {last.fds}")
        if last.tasks > first.tasks + 2:
            found.append(f"asyncio tasks {first.tasks} -> {last.tasks}")
        return found

    def table(self) -> str:
        rows = ["| cycle | s | RSS MiB | fds | tasks | Peer objects |", "|---|---|---|---|---|---|"]
        points = [*self.checkpoints, *([self.after_all_left] if self.after_all_left else [])]
        for p in points:
            label = str(p.cycle) if p is not self.after_all_left else "all left"
            rows.append(
                f"| {label} | {p.seconds:.0f} | {p.rss_bytes / 2**20:.1f} | {p.fds} | "
                f"{p.tasks} | {p.objects.get('Peer', 0)} |"
            )
        return "\n".join(rows)


async def soak(
    cycles: int, checkpoint_every: int, workdir: Path, first_checkpoint: int | None = None
) -> SoakResult:
    """Run `cycles` join/leave cycles against a fresh server process; checkpoints at
    `first_checkpoint` (default `checkpoint_every`) and every `checkpoint_every` after."""
    # Every newcomer comes from 127.0.0.1: far above a person's reconnects.
    server = SfuProcess(workdir, "[signaling]\njoins_per_minute_per_ip = 1000000\n")
    try:
        await server.start()
        async with aiohttp.ClientSession() as http:
            return await _run(server, http, cycles, checkpoint_every, first_checkpoint)
    finally:
        server.stop()


async def _run(
    server: SfuProcess,
    http: aiohttp.ClientSession,
    cycles: int,
    every: int,
    first: int | None,
) -> SoakResult:
    room_id = await server.create_room(http)
    url = server.url
    result = SoakResult(cycles)
    steady = RtcClient(url, room_id, "Steady", decode=False)
    try:
        assert (await steady.join())["type"] == "joined"
        started = time.monotonic()
        marks = {first or every, *range(every, cycles + 1, every)}
        for cycle in range(1, cycles + 1):
            await asyncio.wait_for(_cycle(url, room_id, steady, cycle), CYCLE_TIMEOUT)
            if cycle in marks:
                result.checkpoints.append(await _settled(server, http, cycle, started, peers=1))
    finally:
        await steady.close()
    result.after_all_left = await _settled(server, http, cycles, started, peers=0)
    return result


async def _cycle(url: str, room_id: str, steady: RtcClient, cycle: int) -> None:
    newcomer = RtcClient(url, room_id, f"N{cycle}", decode=False)
    try:
        reply = await newcomer.join()
        assert reply["type"] == "joined", reply
        await newcomer.wait_packets((steady.peer_id or "", "camera"), packets=1, timeout=10)
        if cycle % 2:
            await newcomer.send({"type": "leave"})
    finally:
        await newcomer.close()


async def _settled(
    server: SfuProcess, http: aiohttp.ClientSession, cycle: int, started: float, peers: int
) -> Checkpoint:
    """Stats once the server has let the last newcomer go (or everyone, with `peers` 0):
    a closed socket is noticed within a moment, not at once."""
    deadline = time.monotonic() + scaled(10)
    while True:
        stats = await server.stats(http)
        point = Checkpoint(cycle=cycle, seconds=time.monotonic() - started, **stats)
        if point.objects["Peer"] <= peers or time.monotonic() > deadline:
            return point
        await asyncio.sleep(0.2)


def report(result: SoakResult) -> str:
    first, last = result.checkpoints[0], result.checkpoints[-1]
    verdict = result.problems() or ["none"]
    return (
        f"{result.cycles} join/leave cycles in {last.seconds:.0f} s\n\n{result.table()}\n\n"
        f"RSS growth from cycle {first.cycle} to {last.cycle}: {result.rss_growth:+.2%} "
        f"({result.rss_growth_per_cycle() / 1024:+.1f} KiB per cycle)\n"
        f"problems: {'; '.join(verdict)}\n"
    )


def to_json(result: SoakResult) -> str:
    return json.dumps(
        {
            "cycles": result.cycles,
            "rss_growth": result.rss_growth,
            "problems": result.problems(),
            "checkpoints": [vars(p) for p in result.checkpoints],
            "after_all_left": vars(result.after_all_left) if result.after_all_left else None,
        },
        indent=1,
    )
