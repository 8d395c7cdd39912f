"""Measure one real call: server CPU per forwarded RTP packet, and join → first frame.

    python bench/call_cost.py [--peers 4] [--warmup 5] [--window 20] [--json out.json]

Starts `python -m kaamos_sfu` as its own process on loopback (ICE on 127.0.0.1 only),
joins N in-process aiortc clients that publish pre-encoded VP8 + Opus (320x180, 30 fps)
and receive without decoding, then reads the server's utime+stime from /proc over a
steady window and divides by the RTP packets the clients received from it. The last client
then leaves and a decoding receive-only client joins the running call to time join → first decoded remote frame.
Every run is bounded: the whole script stops itself after warmup + window + 30 s.

This is a measurement, not a test; the full benchmark (baselines, sweeps) is separate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from rtc_client import RtcClient

from kaamos_sfu.rtc_bridge import configure_ice

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_healthy(url: str, deadline: float) -> None:
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(url + "/health") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("server did not become healthy")


async def create_room(url: str, config: Path) -> str:
    token = (await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "kaamos_sfu", "token", "--sub", "bench", "--config", str(config)],
        check=True, capture_output=True, text=True,
    )).stdout.strip()
    async with aiohttp.ClientSession() as session, session.post(
        url + "/api/rooms/create", headers={"Authorization": f"Bearer {token}"}
    ) as response:
        return str((await response.json())["room_id"])


async def measure(args: argparse.Namespace, workdir: Path) -> dict[str, object]:
    port = free_port()
    config = workdir / "config.toml"
    config.write_text(
        f'[server]\nhost = "127.0.0.1"\nport = {port}\nstate_dir = "{workdir / "state"}"\n'
        f'[ice]\nhost_addresses = ["127.0.0.1"]\n[log]\nlevel = "warning"\n'
    )
    server = subprocess.Popen(  # noqa: ASYNC220 - started once, before any measurement
        [sys.executable, "-m", "kaamos_sfu", "--config", str(config)], cwd=ROOT
    )
    url = f"http://127.0.0.1:{port}"
    peers: list[RtcClient] = []
    try:
        await wait_healthy(url, time.monotonic() + 15)
        room_id = await create_room(url, config)
        for index in range(args.peers):
            peer = RtcClient(url, room_id, f"P{index}", decode=False)
            peers.append(peer)
            await peer.join()
        await asyncio.sleep(args.warmup)

        def forwarded() -> int:
            return sum(r.packets for p in peers for r in p.received.values())

        packets_before, cpu_before, t0 = forwarded(), cpu_seconds(server.pid), time.monotonic()
        await asyncio.sleep(args.window)
        packets = forwarded() - packets_before
        cpu = cpu_seconds(server.pid) - cpu_before
        elapsed = time.monotonic() - t0

        # join -> first decoded frame, for a receive-only client taking the place of the
        # last peer in the running call
        await peers.pop().close()
        await asyncio.sleep(1.0)
        late = RtcClient(url, room_id, "late", publish=())
        joined_at = time.monotonic()
        try:
            await late.join()
            await late.wait_decoded((peers[0].peer_id, "camera"), frames=1, timeout=10)
            first_frame = late.received_from(peers[0].peer_id, "camera").first_decoded_at
        finally:
            await late.close()
        assert first_frame is not None
        return {
            "peers": args.peers,
            "window_s": round(elapsed, 2),
            "forwarded_packets_per_s": round(packets / elapsed),
            "server_cpu_percent_of_one_core": round(100 * cpu / elapsed, 1),
            "server_us_per_forwarded_packet": round(1e6 * cpu / packets, 1) if packets else None,
            "join_to_first_remote_frame_ms": round(1000 * (first_frame - joined_at)),
        }
    finally:
        await asyncio.gather(*(p.close() for p in peers), return_exceptions=True)
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peers", type=int, default=4)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--window", type=float, default=20.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    configure_ice(["127.0.0.1"])  # the clients, too, stay on loopback
    signal.alarm(int(args.warmup + args.window + 30))  # backstop: never run unbounded
    with tempfile.TemporaryDirectory() as workdir:
        result = asyncio.run(measure(args, Path(workdir)))
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
