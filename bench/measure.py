"""One measurement: R rooms of 4 on one system, with load-client processes, over a
steady window. Everything is bounded in time; every process started here is stopped."""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import ROOT
from .servers import System, machine_cpu, tree_usage, udp_backlog

MAX_LOSS_PCT = 1.0
SATURATED_SFU = 90.0  # % of one core for a single-process SFU
MIN_FORWARDED_RATIO = 0.97  # received ÷ (3 x sent) below this: someone is falling behind


@dataclass(frozen=True)
class Settings:
    warmup: float
    window: float
    clips: Path
    client_processes: int = 2
    profile: bool = False


class WorkerProcess:
    def __init__(self, process: asyncio.subprocess.Process, log: Path) -> None:
        self.process = process
        self.log = log

    async def send(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps({"cmd": command}) + "\n").encode())
        await self.process.stdin.drain()

    async def expect(self, event: str, timeout: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        while True:
            line = await asyncio.wait_for(
                self.process.stdout.readline(), max(0.1, deadline - time.monotonic())
            )
            if not line:
                raise RuntimeError(f"load worker exited; see {self.log}")
            message: dict[str, Any] = json.loads(line)
            if message.get("event") == event:
                return message


def percentile(values: list[float], q: float) -> float | None:
    ordered = sorted(values)
    return ordered[int(q * (len(ordered) - 1))] if ordered else None


def summary(values: list[float]) -> dict[str, float | None]:
    return {
        "median": statistics.median(values) if values else None,
        "p95": percentile(values, 0.95),
        "max": max(values) if values else None,
    }


async def measure(system: System, rooms: int, settings: Settings, logs: Path) -> dict[str, Any]:
    """Start the system, load it with `rooms` rooms of 4, measure, stop it."""
    background = await _machine_busy(1.0)  # what others already use of this machine
    system.start()
    try:
        idle_rss = tree_usage(system.pid)[2]
        room_ids = system.create_rooms(rooms)
        result = await _load(system, room_ids, idle_rss, settings, logs)
    finally:
        system.stop()
    result["machine_busy_before_pct"] = background
    return result


async def _machine_busy(seconds: float) -> float:
    total, idle = machine_cpu()
    await asyncio.sleep(seconds)
    total_after, idle_after = machine_cpu()
    elapsed = total_after - total
    return round(100 * (elapsed - (idle_after - idle)) / (elapsed or 1), 1)


async def _load(
    system: System, room_ids: list[str], idle_rss: int, settings: Settings, logs: Path
) -> dict[str, Any]:
    count = max(1, min(settings.client_processes, len(room_ids)))
    setup_timeout = 30 + 10 * len(room_ids)
    max_seconds = setup_timeout + settings.warmup + settings.window + 60
    workers = []
    for index in range(count):
        log = logs / f"worker-{system.name.replace('/', '_')}-R{len(room_ids)}-{index}.log"
        with open(log, "wb") as stderr:  # noqa: ASYNC230 - once per worker, before measuring
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.worker",
                "--system",
                system.client,
                "--url",
                system.url,
                "--rooms",
                ",".join(room_ids[index::count]),
                "--clips",
                str(settings.clips),
                "--seed",
                str(index + 1),
                "--max-seconds",
                str(int(max_seconds)),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
                cwd=ROOT,
                limit=1 << 24,
            )
        workers.append(WorkerProcess(process, log))
    try:
        readies = await asyncio.gather(*(w.expect("ready", setup_timeout) for w in workers))
        await asyncio.sleep(settings.warmup)
        profiler = _start_profiler(system, settings, logs, len(room_ids))
        before = _server_sample(system)
        await asyncio.gather(*(w.send("start") for w in workers))
        await asyncio.gather(*(w.expect("started", 10) for w in workers))
        started = time.monotonic()
        await asyncio.sleep(settings.window)
        await asyncio.gather(*(w.send("end") for w in workers))
        windows = await asyncio.gather(*(w.expect("window", 30) for w in workers))
        elapsed = time.monotonic() - started
        after = _server_sample(system)
        profile = _finish_profiler(profiler)
    finally:
        await _stop_workers(workers)
    return _result(system, room_ids, idle_rss, readies, windows, before, after, elapsed, profile)


def _server_sample(system: System) -> dict[str, float]:
    user, kernel, rss = tree_usage(system.pid)
    total, idle = machine_cpu()
    return {
        "cpu": user + kernel,
        "kernel": kernel,
        "rss": rss,
        "total": total,
        "idle": idle,
        **udp_backlog(system.pid),
    }


async def _stop_workers(workers: list[WorkerProcess]) -> None:
    for worker in workers:
        try:
            await worker.send("stop")
        except (ConnectionError, RuntimeError):
            pass
    for worker in workers:
        try:
            await asyncio.wait_for(worker.process.wait(), 30)
        except TimeoutError:
            worker.process.kill()  # our own child, by its PID
            await worker.process.wait()


def _start_profiler(
    system: System, settings: Settings, logs: Path, rooms: int
) -> tuple[subprocess.Popen[bytes], Path] | None:
    if not settings.profile or system.client != "kaamos":
        return None
    output = logs / f"profile-{system.name.replace('/', '_')}-R{rooms}.txt"
    py_spy = Path(sys.executable).parent / "py-spy"
    process = subprocess.Popen(
        [
            str(py_spy),
            "record",
            "--format",
            "raw",
            "--subprocesses",
            "--nonblocking",
            "--rate",
            "200",
            "--duration",
            str(int(settings.window)),
            "--output",
            str(output),
            "--pid",
            str(system.pid),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return process, output


def _finish_profiler(
    profiler: tuple[subprocess.Popen[bytes], Path] | None,
) -> dict[str, float] | None:
    """The functions the server spent its sampled time in (self time, % of samples)."""
    if profiler is None:
        return None
    process, output = profiler
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if not output.exists():
        return None
    own: dict[str, int] = {}
    total = 0
    for line in output.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        leaf = stack.rsplit(";", 1)[-1]
        own[leaf] = own.get(leaf, 0) + int(count)
        total += int(count)
    top = sorted(own.items(), key=lambda item: -item[1])[:15]
    return {name: round(100 * n / total, 1) for name, n in top} if total else None


def _result(
    system: System,
    room_ids: list[str],
    idle_rss: int,
    readies: list[dict[str, Any]],
    windows: list[dict[str, Any]],
    before: dict[str, float],
    after: dict[str, float],
    elapsed: float,
    profile: dict[str, float] | None,
) -> dict[str, Any]:
    def total(name: str) -> float:
        return sum(w[name] for w in windows)

    forwarded = total("audio") + total("video")
    sfu_cpu = after["cpu"] - before["cpu"]
    machine_total = after["total"] - before["total"]
    busy = 100 * (machine_total - (after["idle"] - before["idle"])) / (machine_total or 1)
    participants = sum(r["participants"] for r in readies)
    latencies = [w["latency_ms"] for w in windows if w["latency_ms"]]
    join_first = [x for r in readies for x in r["join_first_ms"]]
    join_all = [x for r in readies for x in r["join_all_ms"]]
    sfu_percent = 100 * sfu_cpu / elapsed
    result: dict[str, Any] = {
        "system": system.name,
        "rooms": len(room_ids),
        "participants": participants,
        "window_s": round(elapsed, 2),
        "forwarded_pkts": forwarded,
        "forwarded_pps": round(forwarded / elapsed, 1),
        "forwarded_mbps": round(total("bytes") * 8 / elapsed / 1e6, 2),
        "ingress_pps": round(total("ingress") / elapsed, 1),
        "expected_ratio": round(forwarded / (3 * total("ingress")), 4)
        if total("ingress")
        else None,
        "sfu_cpu_pct_of_core": round(sfu_percent, 1),
        "sfu_kernel_share_pct": round(100 * (after["kernel"] - before["kernel"]) / sfu_cpu, 1)
        if sfu_cpu
        else None,
        "us_per_fwd_pkt": round(1e6 * sfu_cpu / forwarded, 2) if forwarded else None,
        "loss_pct": round(100 * total("lost") / total("expected"), 3)
        if total("expected")
        else None,
        "rtx_pkts": total("rtx"),
        # Datagrams dropped by the kernel (full socket buffers), on the SFU's side or the
        # clients': it says which side could not keep up.
        "udp_drops_sfu": int(after["sfu_drops"] - before["sfu_drops"]),
        "udp_drops_clients": int(after["client_drops"] - before["client_drops"]),
        # Bytes waiting in receive buffers at the end: where packets were queueing.
        "udp_queued_kb_sfu": round(after["sfu_queued"] / 1024),
        "udp_queued_kb_clients": round(after["client_queued"] / 1024),
        "nacks_sent": total("nacks"),
        "dead_tracks": total("dead_tracks"),
        "tracks": total("tracks"),
        "rss_mb": round(after["rss"] / 2**20, 1),
        "rss_per_peer_mb": round((after["rss"] - idle_rss) / 2**20 / participants, 2)
        if participants
        else None,
        "client_cpu_pct_of_core": round(100 * total("client_cpu_s") / elapsed, 1),
        "machine_busy_pct": round(busy, 1),
        "join_to_first_packet_ms": summary(join_first),
        "join_to_all_tracks_ms": summary(join_all),
        # Each client process measured its own rooms: its p50 and p99, the worst of them.
        "latency_p50_ms": max((x[0] for x in latencies), default=None),
        "latency_p99_ms": max((x[1] for x in latencies), default=None),
        "latency_samples": total("latency_samples"),
        "errors": [e for r in readies for e in r["errors"]],
    }
    if profile is not None:
        result["profile_self_pct"] = profile
    result["saturated"] = saturation(result, system)
    return result


def saturation(result: dict[str, Any], system: System) -> str | None:
    """Which side ran out, if any: the SFU, or the load clients.

    A one-process SFU is saturated at 90 % of its core. Otherwise a side that ran out
    shows as loss, or as packets missing from the window (queued or dropped): the side
    whose socket buffers overflowed is the one; without drops, the one that used more of
    the machine. A busy machine alone is not saturation: other programs may be using it
    (see machine_busy_before_pct)."""
    single_process = getattr(system, "workers", 1) == 1
    if (
        system.client != "janus"
        and single_process
        and result["sfu_cpu_pct_of_core"] >= SATURATED_SFU
    ):
        return "sfu"  # one Python process cannot use more than one core
    # The relay re-encodes: its packet count is not 3 x what it receives.
    behind = system.client != "relay" and (result["expected_ratio"] or 0) < MIN_FORWARDED_RATIO
    if not behind and (result["loss_pct"] or 0) <= MAX_LOSS_PCT:
        return None
    if result["udp_drops_sfu"] or result["udp_drops_clients"]:
        return "sfu" if result["udp_drops_sfu"] > result["udp_drops_clients"] else "clients"
    return "sfu" if result["sfu_cpu_pct_of_core"] > result["client_cpu_pct_of_core"] else "clients"
