"""What a fuzz run watches (tests/integration/test_fuzz.py): the others' media, forwarded
intact or not, the server's event loop lag, the REMBs a publisher gets, and what the server
logged."""

from __future__ import annotations

import asyncio
import logging
import os
import struct
import time
import traceback
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiortc.codecs.vpx import VpxPayloadDescriptor
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, unpack_remb_fci
from rtc_client import RtcClient
from timing import scaled

# Logs

def server_exceptions(records: Sequence[logging.LogRecord]) -> list[str]:
    """Errors logged with a traceback by the server, by aiohttp for a request the server
    failed, or by anyone (asyncio: a callback) for an exception raised in server code."""
    found = []
    for record in records:
        if record.levelno < logging.ERROR or not record.exc_info or not record.exc_info[1]:
            continue
        error = record.exc_info[1]
        server_side = record.name.startswith(("kaamos_sfu", "aiohttp.server", "aiohttp.web"))
        frames = traceback.extract_tb(error.__traceback__)
        if server_side or any(f"{os.sep}kaamos_sfu{os.sep}" in f.filename for f in frames):
            found.append(f"{record.name}: {record.getMessage().splitlines()[0][:80]}: {error!r}")
    return found


class ServerErrors:
    """Server exceptions captured (by caplog) since the last look."""

    def __init__(self, caplog: Any) -> None:
        self.caplog = caplog
        self._seen = 0

    def new(self) -> list[str]:
        records = self.caplog.records
        fresh, self._seen = records[self._seen :], len(records)
        return server_exceptions(fresh)


def transport_task_failures(records: Sequence[logging.LogRecord]) -> list[str]:
    """The last line of each traceback aiortc logged for a transport task it lost."""
    return [
        record.getMessage().strip().splitlines()[-1]
        for record in records
        if record.name.startswith("aiortc") and "Traceback" in record.getMessage()
    ]


def summarize(problems: Sequence[str | tuple[str, str]], limit: int = 6) -> str:
    """At most `limit` distinct problems, with how often each was seen; a problem given as
    (what, example) shows its first example."""
    counts: Counter[str] = Counter()
    examples: dict[str, str] = {}
    for problem in problems:
        what, example = problem if isinstance(problem, tuple) else (problem, "")
        counts[what] += 1
        examples.setdefault(what, example)
    lines = []
    for what, n in counts.most_common(limit):
        example = f"\n      e.g. {examples[what]}" if examples[what] else ""
        lines.append(f"{n} x {what}{example}" if n > 1 else f"{what}{example}")
    if len(counts) > limit:
        lines.append(f"... and {len(counts) - limit} more distinct ones")
    return "\n  ".join(lines)


# The others' media

TrackKey = tuple[str, str]


@dataclass
class Flow:
    """One remote track as one client receives it."""

    receiver: RtcClient
    key: TrackKey
    label: str

    def counts(self) -> tuple[int, int]:
        mid = self.receiver.mid_of(self.key)
        if mid is None:
            return 0, 0
        record = self.receiver.received[mid]
        return record.packets, record.decoded


class MediaWatch:
    """Watches flows of media; a flow whose packets or decoded frames stop is a problem."""

    def __init__(self, flows: Sequence[Flow]) -> None:
        self.flows = list(flows)
        now = time.monotonic()
        self._last = {f.label: f.counts() for f in self.flows}
        self._moved = {f.label: (now, now) for f in self.flows}

    def stalled(self, seconds: float) -> list[str]:
        """Flows whose packets or decoded frames have not grown for `seconds`."""
        now = time.monotonic()
        stalled = []
        for flow in self.flows:
            packets, decoded = flow.counts()
            last_packets, last_decoded = self._last[flow.label]
            packets_moved, decoded_moved = self._moved[flow.label]
            if packets > last_packets:
                packets_moved = now
            if decoded > last_decoded:
                decoded_moved = now
            self._last[flow.label] = (packets, decoded)
            self._moved[flow.label] = (packets_moved, decoded_moved)
            if now - packets_moved > seconds:
                stalled.append(f"{flow.label}: no packet for {now - packets_moved:.1f} s")
            elif now - decoded_moved > seconds:
                stalled.append(f"{flow.label}: no frame decoded for {now - decoded_moved:.1f} s")
        return stalled

    def packets(self) -> dict[str, int]:
        return {f.label: f.counts()[0] for f in self.flows}


def vp8_keyframe_start(payload: bytes) -> bool:
    """The payload starts a VP8 key frame (RFC 7741: S=1, partition 0, then P=0)."""
    try:
        descriptor, rest = VpxPayloadDescriptor.parse(payload)
    except ValueError:
        return False
    return bool(descriptor.partition_start and descriptor.partition_id == 0 and rest
                and not rest[0] & 1)


async def forwarded_again(
    receiver: RtcClient, publisher: RtcClient, source: str, packets: int, timeout: float
) -> str | None:
    """None once `receiver` has got `packets` packets of `publisher`'s `source` whose payload
    is byte for byte one the publisher sent, a video key frame among them; else, after
    `timeout` seconds (scaled), what came.

    Payloads, not decoded frames: after garbage, aiortc's jitter buffer and decoder may
    never recover, whatever the server does (a browser does recover), while an intact
    stream from a key frame on is what a subscriber needs."""
    record = receiver.received_from(publisher.peer_id or "", source)
    start = len(record.sequences)
    timeout = scaled(timeout)
    deadline = time.monotonic() + timeout
    video = source != "microphone"
    while True:
        sent = publisher.sent_on(source)
        payloads = [record.payloads.get(s) for s in record.sequences[start:]]
        intact = [p for p in payloads if p is not None and p in sent]
        keyframe = not video or any(vp8_keyframe_start(p) for p in intact)
        if len(intact) >= packets and keyframe:
            return None
        if time.monotonic() > deadline:
            return (f"{publisher.name}'s {source} at {receiver.name}: {len(payloads)} packets, "
                    f"{len(intact)} of them as sent, {'a' if keyframe else 'no'} key frame, "
                    f"in {timeout:.0f} s")
        await asyncio.sleep(0.05)


async def all_resumed(
    flows: Sequence[Flow], packets: int, frames: int, timeout: float
) -> list[str]:
    """What each flow that did not resume got (see `resumed`), all waited for at once."""
    results = await asyncio.gather(*(resumed(f, packets, frames, timeout) for f in flows))
    return [result for result in results if result is not None]


async def resumed(flow: Flow, packets: int, frames: int, timeout: float) -> str | None:
    """None once `flow` has received `packets` more packets and decoded `frames` more
    frames; else, after `timeout` seconds (scaled), what it got."""
    start_packets, start_decoded = flow.counts()
    timeout = scaled(timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got_packets, got_decoded = flow.counts()
        if got_packets - start_packets >= packets and got_decoded - start_decoded >= frames:
            return None
        await asyncio.sleep(0.05)
    got_packets, got_decoded = flow.counts()
    return (f"{flow.label}: {got_packets - start_packets} packets and "
            f"{got_decoded - start_decoded} frames in {timeout:.0f} s")


class LoopLag:
    """How late the event loop wakes a 20 ms sleeper: the lag every task on it suffers."""

    PERIOD = 0.02

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(self.PERIOD)
            self.samples.append(loop.time() - start - self.PERIOD)

    def window(self) -> list[float]:
        taken, self.samples = self.samples, []
        return taken

    def stop(self) -> None:
        self._task.cancel()


def record_rembs(client: RtcClient, source: str) -> list[int]:
    """The bitrates of the REMBs the SFU sends to `client`'s sender of `source`."""
    mid = client.mid_of((client.peer_id or "", source))
    sender = next(t.sender for t in client.pc.getTransceivers() if t.mid == mid)
    handle = sender._handle_rtcp_packet
    bitrates: list[int] = []

    async def on_rtcp(packet: Any) -> None:
        if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            try:
                bitrates.append(unpack_remb_fci(packet.fci)[0])
            except (ValueError, struct.error):
                pass
        await handle(packet)

    sender._handle_rtcp_packet = on_rtcp  # type: ignore[method-assign]
    return bitrates
