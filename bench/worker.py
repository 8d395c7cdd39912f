"""A load-client process: sets up its rooms, then answers the orchestrator's commands.

    python -m bench.worker --system kaamos --url http://127.0.0.1:8080 --rooms ID,ID ...

Protocol (JSON lines): the worker prints {"event": "ready", ...} once every room is set
up, then reads commands on stdin: {"cmd": "start"} begins a measurement window,
{"cmd": "end"} ends it and prints the window's figures, {"cmd": "stop"} leaves and exits.
It also exits by itself after --max-seconds, whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from . import loadclient
from .clip import load_clips
from .janus_client import JanusParticipant
from .janus_client import create_room as create_janus_room
from .kaamos_client import KaamosParticipant
from .participant import Participant
from .relay_client import RelayParticipant

ROOM_SIZE = 4
JOIN_TIMEOUT = 15.0


def emit(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


class Worker:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.video, self.audio = load_clips(Path(args.clips))
        self.rng = random.Random(args.seed)
        self.rooms: list[list[Participant]] = []
        self.join_first_ms: list[float] = []
        self.join_all_ms: list[float] = []
        self.errors: list[str] = []
        self._start: dict[str, Any] = {}

    def _participant(self, http: aiohttp.ClientSession, room: str, name: str) -> Participant:
        tracks = loadclient.publisher_tracks(self.video, self.audio)
        # Start each publisher at a random point so keyframes of a room do not line up.
        for track in tracks.values():
            track.position = self.rng.randrange(len(track.clip.frames))
        system, url = self.args.system, self.args.url
        if system == "kaamos":
            return KaamosParticipant(http, url, room, name, tracks)
        if system == "janus":
            return JanusParticipant(http, url, int(room), name, tracks)
        return RelayParticipant(http, url, room, name, tracks)

    async def setup_room(self, http: aiohttp.ClientSession, room: str) -> None:
        """Participants join one after another; each join is timed from its start to the
        first packet, and to a packet on every track, of the participants already there."""
        if self.args.system == "janus":
            await create_janus_room(http, self.args.url, int(room))
        present: list[Participant] = []
        self.rooms.append(present)
        for index in range(ROOM_SIZE):
            participant = self._participant(http, room, f"{room}-p{index}")
            started = time.monotonic()
            await participant.join(present)
            await asyncio.gather(*(p.receive_from(participant) for p in present))
            if present:
                await self._time_join(participant, present, started)
            present.append(participant)

    async def _time_join(
        self, participant: Participant, present: list[Participant], started: float
    ) -> None:
        publishers = {p.name for p in present}
        wanted = 2 * len(present)
        deadline = started + JOIN_TIMEOUT
        while len(participant.first_packets(publishers)) < wanted:
            if time.monotonic() > deadline:
                self.errors.append(f"{participant.name}: not every track within {JOIN_TIMEOUT}s")
                break
            await asyncio.sleep(0.01)
        firsts = participant.first_packets(publishers)
        if firsts:
            self.join_first_ms.append(round(1000 * (min(firsts) - started), 1))
        if len(firsts) >= wanted:
            self.join_all_ms.append(round(1000 * (max(firsts) - started), 1))

    def counters(self) -> dict[str, Any]:
        tracks: dict[str, dict[str, int]] = {}
        kinds: dict[str, str] = {}
        for room in self.rooms:
            for participant in room:
                for pc in participant.peer_connections():
                    for transceiver in pc.getTransceivers():
                        stats = getattr(transceiver.receiver, "_bench", None)
                        if stats is None:
                            continue
                        key = f"{participant.name}/{id(transceiver)}"
                        tracks[key] = loadclient.receive_snapshot(transceiver.receiver)
                        kinds[key] = stats.kind
        times = os.times()
        return {
            "tracks": tracks,
            "kinds": kinds,
            "sent": sum(p.sent_packets() for room in self.rooms for p in room),
            "cpu": times.user + times.system,
        }

    def window(self) -> dict[str, Any]:
        """The figures of the window since "start"."""
        end, start = self.counters(), self._start
        totals = {
            "audio": 0,
            "video": 0,
            "bytes": 0,
            "rtx": 0,
            "nacks": 0,
            "expected": 0,
            "lost": 0,
        }
        dead = 0
        for key, after in end["tracks"].items():
            before = start["tracks"].get(key, dict.fromkeys(after, 0))
            packets = after["packets"] - before["packets"]
            totals[end["kinds"][key]] += packets
            for name in ("bytes", "rtx", "nacks", "expected", "lost"):
                totals[name] += after[name] - before[name]
            dead += packets == 0
        delays = sorted(loadclient.PROBE.delays_ns)
        loadclient.PROBE.recording = False
        return {
            "event": "window",
            **totals,
            "tracks": len(end["tracks"]),
            "dead_tracks": dead,
            "ingress": end["sent"] - start["sent"],
            "client_cpu_s": end["cpu"] - start["cpu"],
            "latency_ms": [round(d / 1e6, 3) for d in _percentiles(delays)],
            "latency_samples": len(delays),
        }

    async def run(self, commands: asyncio.StreamReader) -> None:
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as http:
            try:
                results = await asyncio.gather(
                    *(self.setup_room(http, room) for room in self.args.rooms.split(",")),
                    return_exceptions=True,
                )
                self.errors += [repr(r) for r in results if isinstance(r, BaseException)]
                emit(
                    {
                        "event": "ready",
                        "errors": self.errors,
                        "participants": sum(map(len, self.rooms)),
                        "join_first_ms": self.join_first_ms,
                        "join_all_ms": self.join_all_ms,
                    }
                )
                while line := await commands.readline():
                    command = json.loads(line)["cmd"]
                    if command == "start":
                        self._start = self.counters()
                        loadclient.PROBE.delays_ns.clear()
                        loadclient.PROBE.recording = True
                        emit({"event": "started"})
                    elif command == "end":
                        emit(self.window())
                    elif command == "stop":
                        break
            finally:
                everyone = [p for room in self.rooms for p in room]
                await asyncio.gather(
                    *(asyncio.wait_for(p.close(), 10) for p in everyone), return_exceptions=True
                )
                emit({"event": "done"})


def _percentiles(values: list[int]) -> list[int]:
    """p50 and p99 of sorted values (empty: none)."""
    if not values:
        return []
    return [values[int(q * (len(values) - 1))] for q in (0.5, 0.99)]


async def main_async(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    commands = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)
    await asyncio.wait_for(Worker(args).run(commands), args.max_seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--system", choices=("kaamos", "janus", "relay"), required=True)
    parser.add_argument("--url", required=True, help="the system's HTTP base URL")
    parser.add_argument("--rooms", required=True, help="comma-separated room ids")
    parser.add_argument("--clips", required=True, help="file written by bench.clip")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-seconds", type=float, default=300)
    args = parser.parse_args()
    loadclient.patch_aiortc()
    signal.alarm(int(args.max_seconds) + 20)  # backstop, even if the event loop is stuck
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
