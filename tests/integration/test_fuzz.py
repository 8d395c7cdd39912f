"""Fuzzing a live call: hostile signaling frames and SDP answers, and malformed or hostile
RTP/RTCP from a connected peer. What is asserted is what the others in the call notice:
they keep their media, nobody is dropped for bad input, the server logs no failure.

The examples come from hypothesis (fuzz_examples.py says how), the same ones on every run:
3000 frames, and 1500 packets per media test. KAAMOS_FUZZ_EXAMPLES=30000 runs ten times as
many, KAAMOS_FUZZ_SEED=<n> other ones. The signaling fuzzer is in fuzz_signaling.py, the
media attacker in fuzz_media.py, what both watch in fuzz_watch.py."""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
from collections import Counter
from collections.abc import Callable

import pytest
from aiohttp.test_utils import TestClient
from api_support import scrape, value
from app_support import MakeClient, MakeConfig
from call_support import clients, create_room
from fuzz_examples import FUZZ_EXAMPLES, Examples
from fuzz_media import (
    AUDIO_PAYLOAD,
    RTX_PAYLOAD,
    VIDEO_PAYLOAD,
    Crafted,
    MediaAttacker,
    PacketBuilder,
)
from fuzz_signaling import SignalingFuzzer
from fuzz_watch import (
    Flow,
    LoopLag,
    MediaWatch,
    ServerErrors,
    all_resumed,
    forwarded_again,
    record_rembs,
    server_exceptions,
    summarize,
    transport_task_failures,
)
from rtc_client import RtcClient
from timing import scaled

MEDIA_EXAMPLES = max(1, FUZZ_EXAMPLES // 2)
pytestmark = pytest.mark.timeout(90 + FUZZ_EXAMPLES // 50)  # grows with a longer run

BATCH = 50  # frames or packets between two looks at the others' media
STALL_SECONDS = scaled(2.0)  # a flow without a new packet or decoded frame this long is cut
PACKETS_PER_SECOND = 400  # the attacker's pace: about twice all the media it receives
CALM_SECONDS = 2.0  # the call measured before the attack
RATE_FLOOR = 0.5  # the others' packet rate under attack, against the one before
# Packets resent for NACKs against all packets forwarded, during the attack. C gets a third
# of what is forwarded: resending it all once is 0.3; 5 leaves room for a generous budget.
# A NACK listing the same packets hundreds of times must not make the server send them
# hundreds of times.
AMPLIFICATION = 5
RESENT = ("kaamos_retransmissions_total", "kaamos_rtp_packets_forwarded_total")
REMB_FLOOR_BPS = 10_000  # a publisher told less than this is as good as told to stop
# The flood limits raised, so that the fuzzer is judged on its frames, not its pace.
FUZZ_SIGNALING = {
    "max_bad_messages": 1_000_000,
    "max_messages": 1_000_000,
    "joins_per_minute_per_ip": 100_000,
}


async def test_hostile_signaling_gets_bad_message_and_the_call_goes_on(
    make_config: MakeConfig, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Thousands of malformed frames and mutated SDP answers, before and after join, each
    get BAD_MESSAGE or a documented close; two others keep their media; nothing fails."""
    caplog.set_level(logging.ERROR)
    with Examples("signaling", FUZZ_EXAMPLES) as frames:
        http = await make_client(make_config(signaling=FUZZ_SIGNALING))
        room_id = await create_room(http)
        async with clients(http, room_id, 2) as (a, b):
            await a.wait_decoded((b.peer_id or "", "camera"), frames=5)
            await b.wait_decoded((a.peer_id or "", "camera"), frames=5)
            watch = MediaWatch(both_ways(a, b))
            fuzzer = SignalingFuzzer(http, room_id, ServerErrors(caplog))
            started = time.monotonic()
            try:
                await fuzzer.connect()
                before_join = frames.count // 10  # the rest after a join: they reach the peer
                index = 0
                async for frame in frames:
                    if index == before_join and not fuzzer.state.joined:
                        await fuzzer.join()
                    await fuzzer.play(frame, rejoin=index >= before_join)
                    if index % BATCH == BATCH - 1:
                        stalled = watch.stalled(STALL_SECONDS)
                        assert not stalled, f"media cut by frame {index} ({frame}): {stalled}"
                    index += 1
            finally:
                await fuzzer.close()
            elapsed = time.monotonic() - started
            lost = await all_resumed(watch.flows, packets=20, frames=10, timeout=5)
            assert not lost, f"after the fuzz, {lost}"
    print(f"\n{fuzzer.sent} frames in {elapsed:.1f} s: {dict(fuzzer.stats)}")
    assert not fuzzer.problems, (
        f"{len(fuzzer.problems)} frames not answered as docs/protocol.md says:\n  "
        + summarize(fuzzer.problems)
    )
    assert fuzzer.stats["answer taken"] > 0, "no answer was taken: the fuzz never reached SDP"


@pytest.mark.parametrize("family", ["RTP", "RTCP"])
async def test_hostile_media_from_a_peer_leaves_the_call_alone(
    make_config: MakeConfig, make_client: MakeClient, caplog: pytest.LogCaptureFixture,
    family: str,
) -> None:
    """A peer sending malformed or hostile RTP (or RTCP) cuts neither the others' media,
    nor its own camera, nor its connection; it neither starves the server, nor makes it
    resend without bound, nor pins a publisher's bitrate near 0."""
    caplog.set_level(logging.ERROR)
    caplog.set_level(logging.WARNING, logger="aiortc.rtcdtlstransport")  # a lost DTLS task
    with Examples(family.lower(), MEDIA_EXAMPLES) as examples:  # drawn while the call starts
        http = await make_client(make_config())
        room_id = await create_room(http)
        async with clients(http, room_id, 3) as (a, b, c):
            for receiver, sender in ((a, b), (b, a), (a, c), (b, c), (c, a), (c, b)):
                await receiver.wait_decoded((sender.peer_id or "", "camera"), frames=5)
            plans = await examples.all()
            attack = Attack(http, a, b, c, caplog)
            try:
                await attack.measure_calm()
                # C's own RTP would take turns with the crafted packets at the server (a
                # new SSRC restarts a stream there): paused, the crafted ones alone drive
                # C's tracks. Its RTCP goes on. Afterwards its media must come through.
                await attack.run(plans, pause_own_media=family == "RTP")
                print(f"\n{family}: {attack.summary()}")
                await attack.judge()
            finally:
                attack.lag.stop()
    assert not attack.problems, f"{family} from C:\n  " + "\n  ".join(attack.problems)


def both_ways(a: RtcClient, b: RtcClient) -> list[Flow]:
    return [
        Flow(receiver, (sender.peer_id or "", source),
             f"{sender.name}'s {source} at {receiver.name}")
        for receiver, sender in ((a, b), (b, a))
        for source in ("camera", "microphone")
    ]


class Attack:
    """C attacks a call with A and B; what the others, C and the server went through."""

    def __init__(
        self,
        http: TestClient,
        a: RtcClient,
        b: RtcClient,
        c: RtcClient,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        self.http, self.a, self.b, self.c = http, a, b, c
        self.caplog = caplog
        self.lag = LoopLag()
        self.others = MediaWatch(both_ways(a, b))
        self.rembs = {client.name: record_rembs(client, "camera") for client in (a, b)}
        self.attacker = MediaAttacker(c)
        self.builder = _builder_for(c, a, b)
        self.sent: list[Crafted] = []
        self.problems: list[str] = []
        self.calm_rate: dict[str, float] = {}
        self.calm_lag: list[float] = []
        self.rate: dict[str, float] = {}
        self.attack_lag: list[float] = []
        self.elapsed = 0.0
        self.resent = self.forwarded = 0.0

    async def measure_calm(self) -> None:
        """The others' packet rate and the loop's lag without the attack."""
        await asyncio.sleep(0.5)
        self.lag.window()
        before = self.others.packets()
        await asyncio.sleep(CALM_SECONDS)
        self.calm_rate = _rates(before, self.others.packets(), CALM_SECONDS)
        self.calm_lag = self.lag.window()

    async def run(self, plans: list[Crafted], pause_own_media: bool) -> None:
        """Send the packets at PACKETS_PER_SECOND; stop early if the others' media stops
        or C is dropped (then nothing more reaches the server)."""
        for remb in self.rembs.values():
            remb.clear()
        before = self.others.packets()
        counted = await _counters(self.http, RESENT)
        mids = [self.c.mid_of((self.c.peer_id or "", s)) for s in ("camera", "microphone")]
        own = [t.sender for t in self.c.pc.getTransceivers() if t.mid in mids]
        for sender in own if pause_own_media else []:
            sender._enabled = False  # frames are still taken from the track: no burst after
        started = time.monotonic()
        try:
            for index, plan in enumerate(plans):
                if not await self.attacker.send(self.builder.build(plan)):
                    self.builder.refused()
                self.sent.append(plan)
                if index % 10 == 9:
                    due = started + (index + 1) / PACKETS_PER_SECOND
                    await asyncio.sleep(max(0.0, due - time.monotonic()))
                if index % BATCH == BATCH - 1:
                    stalled = self.others.stalled(STALL_SECONDS)
                    if stalled:
                        self.problems.append(f"A and B's media cut by packet {index}: {stalled}")
                        break
                    if self.removed():
                        self.problems.append(self._removal())
                        break
        finally:
            for sender in own:
                sender._enabled = True
        self.elapsed = time.monotonic() - started
        self.rate = _rates(before, self.others.packets(), self.elapsed)
        self.attack_lag = self.lag.window()
        counts = await _counters(self.http, RESENT)
        self.resent, self.forwarded = (counts[name] - counted[name] for name in RESENT)

    def summary(self) -> str:
        return (
            f"{len(self.sent)} packets in {self.elapsed:.1f} s ({dict(self.attacker.sent)}); "
            f"A/B packets/s {_show(self.calm_rate)} -> {_show(self.rate)}; loop lag mean/max "
            f"{_lag(self.calm_lag)} -> {_lag(self.attack_lag)}; "
            f"resent {self.resent:.0f}, forwarded {self.forwarded:.0f}"
        )

    async def judge(self) -> None:
        if self.resent > AMPLIFICATION * max(self.forwarded, 1):
            self.problems.append(
                f"C's NACKs made the server resend {self.resent:.0f} packets in "
                f"{self.elapsed:.1f} s, {self.resent / max(self.forwarded, 1):.0f} times all it "
                f"forwarded meanwhile ({self.forwarded:.0f}; limit {AMPLIFICATION}x): "
                f"NACK work is not bounded"
            )
        if self.elapsed >= CALM_SECONDS:  # shorter (C dropped early): too few packets to tell
            for label, rate in self.rate.items():
                if rate < RATE_FLOOR * self.calm_rate[label]:
                    self.problems.append(
                        f"{label} fell to {rate:.0f} packets/s under attack from "
                        f"{self.calm_rate[label]:.0f} (floor {RATE_FLOOR:.0%}); loop lag "
                        f"mean/max {_lag(self.attack_lag)}, before {_lag(self.calm_lag)}"
                    )
        if not self.removed():
            # C's real camera and microphone reach both others again, and C still receives.
            c, a = self.c, self.a
            forwarded, receiving = await asyncio.gather(
                asyncio.gather(*(forwarded_again(r, c, s, packets=20, timeout=5)
                                 for r in (a, self.b) for s in ("camera", "microphone"))),
                all_resumed([Flow(c, (a.peer_id or "", "camera"), "A's camera at C")],
                            packets=20, frames=5, timeout=5),
            )
            lost = [flow for flow in forwarded if flow is not None] + receiving
            self.problems += [f"after the attack, {flow}" for flow in lost]
            if self.removed():
                self.problems.append(self._removal())
        for name, bitrates in self.rembs.items():
            low = Counter(b for b in bitrates if b < REMB_FLOOR_BPS)
            if low:
                self.problems.append(
                    f"{name}, a publisher, was sent REMB below {REMB_FLOOR_BPS} bps "
                    f"{sum(low.values())} of {len(bitrates)} times: {dict(low.most_common(3))}"
                )
        errors = server_exceptions(self.caplog.records)
        if errors:
            self.problems.append(f"server logged: {summarize(errors)}")

    def removed(self) -> str | None:
        """Why C is no longer in the call, if it is not."""
        if self.c.close_code is not None:
            return f"C's socket was closed with {self.c.close_code}"
        if any(m == {"type": "peer-left", "peer_id": self.c.peer_id} for m in self.a.messages):
            return "A was told C left"
        if self.c.pc.connectionState in ("failed", "closed"):
            return f"C's media connection is {self.c.pc.connectionState}"
        return None

    def _removal(self) -> str:
        failures = transport_task_failures(self.caplog.records)
        return (
            f"the server dropped C for what it sent ({self.removed()}) after "
            f"{len(self.sent)} packets; the last ones: {self.sent[-3:]}"
            + (f"; aiortc lost a transport task: {failures[-1]}" if failures else "")
        )


def _builder_for(c: RtcClient, a: RtcClient, b: RtcClient) -> PacketBuilder:
    """Crafted packets for C: its negotiated payload types, and the four streams it
    receives (A's and B's camera, then their microphones) for feedback to point at."""
    by_mid = {t.mid: t for t in c.pc.getTransceivers()}
    camera = by_mid[c.mid_of((c.peer_id or "", "camera"))]
    microphone = by_mid[c.mid_of((c.peer_id or "", "microphone"))]
    video = next(x for x in camera._codecs if x.mimeType.lower() == "video/vp8")
    rtx = next(x for x in camera._codecs if x.mimeType.lower() == "video/rtx"
               and x.parameters.get("apt") == video.payloadType)
    payload_types = {
        VIDEO_PAYLOAD: int(video.payloadType or 0),
        RTX_PAYLOAD: int(rtx.payloadType or 0),
        AUDIO_PAYLOAD: int(microphone._codecs[0].payloadType or 0),
    }
    senders = [t.sender for t in c.pc.getTransceivers()]
    own = {s._ssrc for s in senders} | {s._rtx_ssrc for s in senders}

    def stream(peer: RtcClient, source: str) -> Callable[[], tuple[int, int]]:
        def current() -> tuple[int, int]:  # (SSRC at C, last sequence number received)
            record = c.received_from(peer.peer_id or "", source)
            return record.ssrc or 0, record.sequences[-1] if record.sequences else 0

        return current

    streams = [stream(a, "camera"), stream(b, "camera"), stream(a, "microphone"),
               stream(b, "microphone")]
    return PacketBuilder(payload_types=payload_types, own_ssrcs=own, streams=streams)


async def _counters(http: TestClient, names: tuple[str, ...]) -> dict[str, float]:
    """The server's own counters (GET /metrics, docs/api.md)."""
    samples = await scrape(http)
    return {name: value(samples, name) for name in names}


def _rates(before: dict[str, int], after: dict[str, int], seconds: float) -> dict[str, float]:
    return {label: (after[label] - before[label]) / seconds for label in before}


def _show(rates: dict[str, float]) -> str:
    return "/".join(f"{rate:.0f}" for rate in rates.values())


def _lag(samples: list[float]) -> str:
    if not samples:
        return "-"
    return f"{statistics.mean(samples) * 1000:.0f}/{max(samples) * 1000:.0f} ms"
