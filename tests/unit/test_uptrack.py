"""UpTrack: fan-out to DownTracks, keyframe-request throttle, sender clock and REMB minimum."""

from __future__ import annotations

import pytest
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket
from fake_clock import FakeClock
from rtp_fakes import PUBLISHER_SSRC, VP8_INTER, VP8_KEY, Packet, Sink

from kaamos_sfu.forwarding import uptrack as uptrack_module
from kaamos_sfu.forwarding.downtrack import DownTrack, ExtensionIds, SenderClock
from kaamos_sfu.forwarding.rtp_header import RtpHeader
from kaamos_sfu.forwarding.uptrack import (
    KEYFRAME_REQUEST_INTERVAL,
    MIN_BANDWIDTH_ESTIMATE,
    UpTrack,
    abs_send_time,
)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """The `time` module inside uptrack.py only (asyncio keeps the real one)."""
    fake = FakeClock(now=1000.0, wall=1_700_000_000.25)
    monkeypatch.setattr(uptrack_module, "time", fake)
    return fake


class Requests:
    """A fake request_keyframe recording the SSRCs it was asked about."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, media_ssrc: int) -> None:
        self.calls.append(media_ssrc)


def make_uptrack(requests: Requests, kind: str = "video") -> UpTrack:
    track = UpTrack(
        peer_id="Qm3xT9aLk2",
        source="camera" if kind == "video" else "microphone",
        kind=kind,
        codec_name="VP8" if kind == "video" else "opus",
        clock_rate=90_000 if kind == "video" else 48_000,
        payload_type=96,
        request_keyframe=requests,
    )
    track.media_ssrc = PUBLISHER_SSRC
    return track


def make_downtrack(uptrack: UpTrack, ssrc: int, payload_type: int = 100) -> DownTrack:
    downtrack = DownTrack(
        sink=Sink(),
        ssrc=ssrc,
        kind=uptrack.kind,
        codec_name=uptrack.codec_name,
        clock_rate=uptrack.clock_rate,
        payload_types={96: payload_type},
        mid=str(ssrc & 0xF),
        extension_ids=ExtensionIds(mid=1, abs_send_time=3),
        start_sequence=ssrc & 0x7FFF,
        start_timestamp=0,
    )
    uptrack.attach(downtrack)
    return downtrack


def sent(downtrack: DownTrack) -> list[RtpPacket]:
    sink = downtrack.sink
    assert isinstance(sink, Sink)
    return [RtpPacket.parse(data) for data in sink.sent]


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (0.0, 0),
        (1.0, 1 << 18),
        (0.5, 1 << 17),
        (63.999_999, 0xFFFFFF),
        (64.0, 0),  # 6 bits of seconds: wraps every 64 s
        (65.25, (1 << 18) + (1 << 16)),
        (1_700_000_000.25, (1_700_000_000 % 64 << 18) + (1 << 16)),
    ],
)
def test_abs_send_time(now: float, expected: int) -> None:
    """abs-send-time is wall-clock seconds in 6.18 fixed point, 24 bits."""
    assert abs_send_time(now) == expected


def test_fan_out_to_every_downtrack(clock: FakeClock) -> None:
    """Each attached DownTrack sends every packet, with its own SSRC and payload type."""
    requests = Requests()
    up = make_uptrack(requests, "audio")
    downs = [
        make_downtrack(up, ssrc, pt) for ssrc, pt in ((0x1001, 100), (0x2002, 111), (0x3003, 96))
    ]
    for sequence in range(5):
        up.forward(Packet(sequence, timestamp=960 * sequence, payload=bytes([sequence])))
    for down, (ssrc, pt) in zip(downs, ((0x1001, 100), (0x2002, 111), (0x3003, 96))):
        packets = sent(down)
        assert [p.ssrc for p in packets] == [ssrc] * 5
        assert {p.payload_type for p in packets} == {pt}
        assert [p.payload for p in packets] == [bytes([s]) for s in range(5)]
    assert up.packets_received == 5
    assert requests.calls == []


def test_abs_send_time_from_wall_clock(clock: FakeClock) -> None:
    """Packets are stamped with abs-send-time of the wall clock when forwarded."""
    up = make_uptrack(Requests(), "audio")
    down = make_downtrack(up, 0x1001)
    clock.wall = 3.5
    up.forward(Packet(1))
    extensions_map = HeaderExtensionsMap()
    extensions_map.configure(
        RTCRtpParameters(
            headerExtensions=[
                RTCRtpHeaderExtensionParameters(
                    id=3, uri="http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
                )
            ]
        )
    )
    assert isinstance(down.sink, Sink)
    packet = RtpPacket.parse(down.sink.sent[0], extensions_map)
    assert packet.extensions.abs_send_time == abs_send_time(3.5) == (7 << 17)


def test_padding_only_packets_are_not_forwarded(clock: FakeClock) -> None:
    """A packet without payload (a bandwidth probe) is counted but reaches no subscriber."""
    requests = Requests()
    up = make_uptrack(requests, "video")
    down = make_downtrack(up, 0x1001)
    up.forward(Packet(1, payload=VP8_KEY))
    up.forward(Packet(2, payload=b""))
    up.forward(Packet(3, payload=VP8_INTER))
    assert [p.sequence_number for p in sent(down)] == [0x1001, 0x1001 + 2]
    assert up.packets_received == 3
    assert requests.calls == []


def test_detach_during_forwarding_is_safe(clock: FakeClock) -> None:
    """Detaching a DownTrack while a packet is being sent neither breaks nor skips the loop."""
    up = make_uptrack(Requests(), "audio")
    first, second, third = (make_downtrack(up, s) for s in (0x1001, 0x2002, 0x3003))
    assert isinstance(first.sink, Sink)
    first.sink.hook = lambda: up.detach(second)
    up.forward(Packet(1))
    assert len(sent(third)) == 1  # the loop went on to the end
    first.sink.hook = lambda: None
    up.forward(Packet(2))
    assert up.downtracks == (first, third)
    # the packet in flight still reached it (the loop walks the tuple it started with);
    # nothing after it was detached
    assert len(sent(second)) == 1
    assert [len(sent(d)) for d in (first, third)] == [2, 2]


def test_attach_during_forwarding_starts_with_the_next_packet(clock: FakeClock) -> None:
    """A DownTrack attached while a packet is being sent gets the packets after it."""
    up = make_uptrack(Requests(), "audio")
    first = make_downtrack(up, 0x1001)
    late: list[DownTrack] = []
    assert isinstance(first.sink, Sink)
    first.sink.hook = lambda: late.append(make_downtrack(up, 0x2002)) if not late else None
    up.forward(Packet(1))
    up.forward(Packet(2))
    assert [len(sent(d)) for d in (first, late[0])] == [2, 1]
    assert sent(late[0])[0].sequence_number == 0x2002


def test_detach_unknown_downtrack_is_harmless() -> None:
    """Detaching a DownTrack that is not attached leaves the others in place."""
    up = make_uptrack(Requests())
    kept = make_downtrack(up, 0x1001)
    other = make_downtrack(make_uptrack(Requests()), 0x2002)
    up.detach(other)
    assert up.downtracks == (kept,)


def test_waiting_video_requests_a_keyframe(clock: FakeClock) -> None:
    """Video subscribers waiting for a keyframe make one PLI per packet at most, to the SSRC."""
    requests = Requests()
    up = make_uptrack(requests, "video")
    make_downtrack(up, 0x1001)
    make_downtrack(up, 0x2002)
    up.forward(Packet(1, payload=VP8_INTER))
    assert requests.calls == [PUBLISHER_SSRC]
    assert up.keyframe_requests == 1


def test_no_request_once_every_subscriber_started(clock: FakeClock) -> None:
    """Packets dropped for other reasons than a missing keyframe ask for nothing."""
    requests = Requests()
    up = make_uptrack(requests, "video")
    down = make_downtrack(up, 0x1001)
    up.forward(Packet(10, payload=VP8_KEY))
    clock.now += 10
    up.forward(Packet(9, payload=VP8_INTER))  # older than the start: dropped
    up.forward(Packet(11, payload=VP8_INTER, payload_type=97))  # unknown PT: dropped
    assert len(sent(down)) == 1
    assert requests.calls == []


@pytest.mark.parametrize(
    ("kind", "media_ssrc", "expected"),
    [
        ("video", PUBLISHER_SSRC, [PUBLISHER_SSRC]),
        ("video", None, []),  # no packet yet: nobody to ask
        ("audio", PUBLISHER_SSRC, []),  # audio has no keyframes
    ],
)
def test_request_keyframe_needs_video_and_ssrc(
    clock: FakeClock, kind: str, media_ssrc: int | None, expected: list[int]
) -> None:
    """A keyframe request goes upstream only for video whose media SSRC is known."""
    requests = Requests()
    up = make_uptrack(requests, kind)
    up.media_ssrc = media_ssrc
    up.request_keyframe()
    assert requests.calls == expected
    assert up.keyframe_requests == len(expected)


@pytest.mark.parametrize(
    ("times", "sent_at"),
    [
        ([1000.0, 1000.1, 1000.499, 1000.5, 1000.9, 1001.0], [1000.0, 1000.5, 1001.0]),
        ([5.0, 5.0, 5.0], [5.0]),
        ([5.0, 5.6, 6.2, 6.8], [5.0, 5.6, 6.2, 6.8]),
        ([0.0, 0.25, 0.5], [0.0, 0.5]),  # right after boot the first request still goes out
    ],
)
def test_keyframe_request_throttle(
    clock: FakeClock, times: list[float], sent_at: list[float]
) -> None:
    """At most one keyframe request per KEYFRAME_REQUEST_INTERVAL (500 ms)."""
    assert KEYFRAME_REQUEST_INTERVAL == 0.5
    requests = Requests()
    up = make_uptrack(requests, "video")
    went_out = []
    for t in times:
        clock.now = t
        before = len(requests.calls)
        up.request_keyframe()
        if len(requests.calls) > before:
            went_out.append(t)
    assert went_out == sent_at
    assert up.keyframe_requests == len(sent_at)


def test_new_subscriber_skips_the_throttle_once_a_keyframe_answered(clock: FakeClock) -> None:
    """A subscriber attaching right after another gets its keyframe request out at once if
    the previous request was already answered; never while it is still unanswered, and a
    subscriber's own PLI always waits out the interval."""
    requests = Requests()
    up = make_uptrack(requests, "video")
    up.request_keyframe(new_subscriber=True)
    clock.now += 0.1
    up.request_keyframe(new_subscriber=True)  # unanswered: throttled
    assert len(requests.calls) == 1
    up.forward(Packet(1, payload=VP8_KEY))  # the publisher answered
    clock.now += 0.1
    up.request_keyframe()  # a PLI from a subscriber: still throttled
    assert len(requests.calls) == 1
    up.request_keyframe(new_subscriber=True)
    assert len(requests.calls) == 2


def test_forward_requests_are_throttled_too(clock: FakeClock) -> None:
    """A stream of inter frames to a waiting subscriber yields one PLI per interval."""
    requests = Requests()
    up = make_uptrack(requests, "video")
    make_downtrack(up, 0x1001)
    for i in range(10):  # 10 packets over 0.9 s
        clock.now = 1000.0 + 0.1 * i
        up.forward(Packet(i, payload=VP8_INTER))
    assert len(requests.calls) == 2


def test_sender_report_records_the_clock(clock: FakeClock) -> None:
    """A publisher's SR is kept with the local monotonic time it arrived."""
    up = make_uptrack(Requests())
    clock.now = 42.5
    up.on_sender_report(0x1234_5678_9ABC_DEF0, 0xDEADBEEF)
    assert up.sender_clock == SenderClock(
        ntp=0x1234_5678_9ABC_DEF0, rtp=0xDEADBEEF, received_at=42.5
    )


@pytest.mark.parametrize(
    ("estimates", "expected"),
    [
        ([], None),
        ([None], None),
        ([None, None], None),
        ([800_000], 800_000),
        ([None, 500_000, 300_000], 300_000),
        ([300_000, 2_000_000, 1_000_000], 300_000),
        ([2_000_000, None, 64_000], 64_000),
        # a subscriber's 0 (or any estimate below the floor) does not stop the publisher
        ([0, 800_000], MIN_BANDWIDTH_ESTIMATE),
        ([MIN_BANDWIDTH_ESTIMATE - 1], MIN_BANDWIDTH_ESTIMATE),
    ],
)
def test_bandwidth_estimate_is_the_minimum(
    estimates: list[int | None], expected: int | None
) -> None:
    """The publisher is told the weakest subscriber's REMB; subscribers without one don't count."""
    up = make_uptrack(Requests())
    for i, estimate in enumerate(estimates):
        make_downtrack(up, 0x1000 + i).remb_bps = estimate
    assert up.bandwidth_estimate() == expected


def test_bandwidth_estimate_ignores_detached() -> None:
    """A detached subscriber's estimate no longer limits the publisher."""
    up = make_uptrack(Requests())
    slow = make_downtrack(up, 0x1001)
    fast = make_downtrack(up, 0x1002)
    slow.remb_bps, fast.remb_bps = 100_000, 900_000
    up.detach(slow)
    assert up.bandwidth_estimate() == 900_000


def test_restart_on_new_ssrc_keeps_every_subscriber_stream_continuous(
    clock: FakeClock,
) -> None:
    """A publisher that starts over on a new SSRC resets the receive stats and the sender
    clock; each subscriber's sequence numbers go on without a gap."""
    requests = Requests()
    up = make_uptrack(requests, "audio")
    down = make_downtrack(up, 0x1001)
    for sequence in range(3):
        up.forward(Packet(500 + sequence, timestamp=960 * sequence))
    up.stats.add(502, 1920, 0.0)
    up.on_sender_report(1 << 32, 1920)
    up.restart(0x5EED)
    assert up.media_ssrc == 0x5EED
    assert up.stats.received == 0 and up.sender_clock is None
    up.forward(Packet(40_000, timestamp=7, ssrc=0x5EED))
    sequences = [p.sequence_number for p in sent(down)]
    assert sequences == [(sequences[0] + i) & 0xFFFF for i in range(4)]


class FailingSink(Sink):
    def send_rtp(self, data: bytes) -> None:
        raise ValueError("broken subscriber")


def test_a_failing_subscription_is_dropped_and_the_others_go_on(clock: FakeClock) -> None:
    """An exception in one subscriber's send detaches it; the other subscribers still get
    the packet and the ones after it."""
    up = make_uptrack(Requests(), "audio")
    good = make_downtrack(up, 0x1001)
    bad = make_downtrack(up, 0x2002)
    bad.sink = FailingSink()
    later = make_downtrack(up, 0x3003)
    for sequence in range(3):
        up.forward(Packet(sequence, timestamp=960 * sequence))
    assert up.downtracks == (good, later)
    assert len(sent(good)) == len(sent(later)) == 3


def rtp(sequence: int, payload: bytes = b"\x01\x02", ssrc: int = PUBLISHER_SSRC,
        payload_type: int = 96, timestamp: int = 0) -> RtpHeader:
    return RtpHeader(
        marker=0,
        payload_type=payload_type,
        sequence_number=sequence,
        timestamp=timestamp,
        ssrc=ssrc,
        payload=payload,
    )


def test_receive_learns_the_ssrc_and_asks_for_what_video_lost(clock: FakeClock) -> None:
    """The first packet sets the SSRC; a gap in video returns the holes to NACK, oldest
    first; audio never asks."""
    video = make_uptrack(Requests())
    video.media_ssrc = None
    assert video.receive(rtp(10), 0.0) == ()
    assert video.media_ssrc == PUBLISHER_SSRC
    assert video.receive(rtp(14), 0.0) == (11, 12, 13)
    assert video.receive(rtp(12), 0.0) == ()
    assert video.nacks_sent == 1
    audio = make_uptrack(Requests(), "audio")
    audio.receive(rtp(10), 0.0)
    assert audio.receive(rtp(14), 0.0) == ()
    assert audio.packets_received == 2


def test_a_stray_packet_far_from_the_stream_is_discarded(clock: FakeClock) -> None:
    """One packet numbered far away (forged, or from another stream) reaches no one, and
    the subscriber's numbering stays continuous."""
    up = make_uptrack(Requests(), "audio")
    down = make_downtrack(up, 0x1001)
    for sequence in (100, 101, 40_000, 102):
        up.receive(rtp(sequence), 0.0)
    assert up.packets_discarded == 1
    sequences = [p.sequence_number for p in sent(down)]
    assert sequences == [(sequences[0] + i) & 0xFFFF for i in range(3)]


@pytest.mark.parametrize("jump", [-30_000, -1025, 5_000, 30_000])
def test_numbering_that_starts_over_on_the_same_ssrc_is_followed(
    clock: FakeClock, jump: int
) -> None:
    """A publisher whose numbering jumps and goes on from there (same SSRC) is followed:
    after one doubtful packet, video restarts from the next keyframe (asking for one) and
    each subscriber's numbering goes on without a jump (SRTP would refuse one back)."""
    requests = Requests()
    up = make_uptrack(requests)
    down = make_downtrack(up, 0x1001)
    start = 20_000
    up.receive(rtp(start, VP8_KEY), 0.0)
    up.receive(rtp(start + 1, VP8_INTER), 0.0)
    restart = (start + 2 + jump) & 0xFFFF
    for i, payload in enumerate([VP8_INTER, VP8_INTER, VP8_INTER, VP8_KEY, VP8_INTER]):
        up.receive(rtp((restart + i) & 0xFFFF, payload), 0.0)
    assert requests.calls  # a keyframe was asked for
    sequences = [p.sequence_number for p in sent(down)]
    assert len(sequences) == 4  # 2 before, then from the keyframe on
    assert sequences == [(sequences[0] + i) & 0xFFFF for i in range(4)]


def test_rtx_brings_back_only_recent_packets(clock: FakeClock) -> None:
    """An RTX packet is unwrapped and forwarded if it carries one of the last packets
    (filling a hole); one from the future or from long ago, or bare padding, is not."""
    up = make_uptrack(Requests())
    down = make_downtrack(up, 0x1001)
    up.receive(rtp(1000, VP8_KEY), 0.0)
    up.receive(rtp(1002, VP8_INTER), 0.0)
    assert up.stats.missing == {1001}

    def rtx(original: int) -> RtpHeader:
        return rtp(7, original.to_bytes(2, "big") + VP8_INTER, ssrc=0xABC, payload_type=97)

    up.receive_rtx(rtx(1001), 96)
    assert up.stats.missing == set()
    up.receive_rtx(rtx(1003), 96)  # never sent
    up.receive_rtx(rtx(1002 - 600), 96)  # long gone
    up.receive_rtx(rtp(8, b"\x00", ssrc=0xABC, payload_type=97), 96)  # padding probe
    assert up.packets_discarded == 2
    assert [p.sequence_number - sent(down)[0].sequence_number for p in sent(down)] == [0, 2, 1]
