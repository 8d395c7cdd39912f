"""DownTrack: the RTP header rewrite per subscriber, keyframe gating, NACK cache, SR mapping.

Packets are synthetic; the bytes DownTrack produces are parsed back with aiortc's parser.
"""

from __future__ import annotations

from typing import Any

import pytest
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket
from rtp_fakes import (
    H264_PPS,
    H264_SLICE,
    H264_SPS,
    VP8_INTER,
    VP8_KEY,
    VP8_MIDDLE,
    Extensions,
    Packet,
    stap_a,
)

from kaamos_sfu.forwarding.downtrack import (
    MAX_AHEAD,
    MAX_BEHIND,
    NTP_SCALE,
    RETRANSMISSION_BURST,
    RETRANSMISSIONS_PER_SECOND,
    VIDEO_CACHE_SIZE,
    DownTrack,
    ExtensionIds,
    SenderClock,
)
from kaamos_sfu.forwarding.keyframe import starts_keyframe

URI_MID = "urn:ietf:params:rtp-hdrext:sdes:mid"
URI_ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
URI_AUDIO_LEVEL = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"

SUBSCRIBER_SSRC = 0xCAFEBABE
DEFAULT_IDS = ExtensionIds(mid=1, abs_send_time=3)


class NullSink:
    def send_rtp(self, data: bytes) -> None:
        raise AssertionError("DownTrack.rewrite must not send")


def make(
    kind: str = "video",
    codec_name: str = "VP8",
    *,
    ids: ExtensionIds = DEFAULT_IDS,
    mid: str = "2",
    start_sequence: int = 1000,
    start_timestamp: int = 50_000,
    payload_types: dict[int, int] | None = None,
    clock_rate: int | None = None,
) -> DownTrack:
    return DownTrack(
        sink=NullSink(),
        ssrc=SUBSCRIBER_SSRC,
        kind=kind,
        codec_name=codec_name,
        clock_rate=clock_rate or (90_000 if kind == "video" else 48_000),
        payload_types={96: 102} if payload_types is None else payload_types,
        mid=mid,
        extension_ids=ids,
        start_sequence=start_sequence,
        start_timestamp=start_timestamp,
    )


def parse(data: bytes, ids: ExtensionIds = DEFAULT_IDS) -> RtpPacket:
    """The bytes as a subscriber's aiortc would parse them with the negotiated ids."""
    extensions = [
        RTCRtpHeaderExtensionParameters(id=i, uri=uri)
        for i, uri in (
            (ids.mid, URI_MID),
            (ids.abs_send_time, URI_ABS_SEND_TIME),
            (ids.audio_level, URI_AUDIO_LEVEL),
        )
        if i
    ]
    extensions_map = HeaderExtensionsMap()
    extensions_map.configure(RTCRtpParameters(headerExtensions=extensions))
    return RtpPacket.parse(data, extensions_map)


def offer(track: DownTrack, packet: Any, abs_send_time: int = 0x123456) -> bytes | None:
    """What the DownTrack makes of `packet`, told whether it starts a keyframe as its
    UpTrack tells it (once per packet, for every subscriber)."""
    return track.rewrite(packet, abs_send_time, starts_keyframe(track.codec_name, packet.payload))


def rewrite(track: DownTrack, packet: Any, abs_send_time: int = 0x123456) -> bytes:
    data = offer(track, packet, abs_send_time)
    assert data is not None
    return data


# Header rewrite


@pytest.mark.parametrize(
    ("kind", "codec", "payload", "marker", "csrc"),
    [
        ("video", "VP8", VP8_KEY, 1, []),
        ("video", "VP8", VP8_KEY + bytes(range(256)) * 4, 0, []),
        ("audio", "opus", b"\xfc\xff\xfe", 0, []),
        ("audio", "opus", b"\x78", 1, [0x01020304, 0xA0B0C0D0]),
    ],
)
def test_first_packet_header(
    kind: str, codec: str, payload: bytes, marker: int, csrc: list[int]
) -> None:
    """The first packet gets the subscriber's SSRC, PT, start seq/ts; payload and marker kept."""
    track = make(kind, codec, payload_types={96: 102, 111: 109})
    source = Packet(
        sequence_number=40_000,
        timestamp=123_456_789,
        payload=payload,
        marker=marker,
        csrc=csrc,
    )
    packet = parse(rewrite(track, source))
    assert packet.version == 2
    assert packet.ssrc == SUBSCRIBER_SSRC
    assert packet.payload_type == 102
    assert packet.sequence_number == 1000
    assert packet.timestamp == 50_000
    assert packet.marker == marker
    assert packet.csrc == csrc
    assert packet.payload == payload
    assert packet.padding_size == 0


@pytest.mark.parametrize(
    ("publisher_pt", "expected"),
    [(96, 102), (111, 109), (97, None), (0, None)],
)
def test_payload_type_map(publisher_pt: int, expected: int | None) -> None:
    """The publisher's PT becomes the subscriber's; a PT the subscriber lacks is not sent."""
    track = make("audio", "opus", payload_types={96: 102, 111: 109})
    data = offer(track, Packet(5, 5, payload_type=publisher_pt), 0)
    if expected is None:
        assert data is None
    else:
        assert data is not None and parse(data).payload_type == expected


@pytest.mark.parametrize(
    ("publisher_first", "subscriber_first"),
    [
        (0, 1000),
        (65_530, 1000),  # the publisher wraps
        (1000, 65_530),  # the subscriber wraps
        (65_535, 65_535),  # both wrap on the second packet
        (12_345, 0),
    ],
)
def test_sequence_numbers_continuous_across_wrap(
    publisher_first: int, subscriber_first: int
) -> None:
    """Consecutive publisher sequence numbers stay consecutive after the rewrite, mod 2^16."""
    track = make("audio", "opus", start_sequence=subscriber_first)
    sent = []
    for i in range(12):
        data = rewrite(track, Packet((publisher_first + i) & 0xFFFF, 960 * i))
        sent.append(parse(data).sequence_number)
    assert sent == [(subscriber_first + i) & 0xFFFF for i in range(12)]
    assert track.last_sequence == sent[-1]


def test_long_streams_are_never_taken_for_late_packets() -> None:
    """Past 32768 packets (11 minutes of audio) every packet is still forwarded, across
    several 16-bit wraps, with consecutive sequence numbers."""
    track = make("audio", "opus", start_sequence=7)
    expected = 7
    for i in range(140_000):
        data = offer(track, Packet((40_000 + i) & 0xFFFF, 960 * i), 0)
        assert data is not None, f"packet {i} dropped"
        assert (data[2] << 8 | data[3]) == expected
        expected = (expected + 1) & 0xFFFF


def test_late_packet_just_before_the_start_is_dropped_even_after_a_while() -> None:
    """A retransmission from before the keyframe that started the stream, arriving after a
    few hundred newer packets, is still recognised as older than the start."""
    track = make("video", "VP8")
    rewrite(track, Packet(5000, 0, VP8_KEY))
    for i in range(1, 300):
        rewrite(track, Packet(5000 + i, 3000 * i, VP8_INTER))
    assert offer(track, Packet(4990, 0, VP8_INTER), 0) is None


@pytest.mark.parametrize("field_name", ["mid", "abs_send_time", "audio_level"])
@pytest.mark.parametrize("bad_id", [15, 20, 255, -1])
def test_extension_ids_outside_one_byte_range_are_refused(field_name: str, bad_id: int) -> None:
    """Ids a one-byte header extension cannot carry never reach the per-packet code."""
    with pytest.raises(ValueError, match=field_name):
        ExtensionIds(**{field_name: bad_id})


def test_restart_continues_numbering_from_the_next_keyframe() -> None:
    """When the publisher's stream starts over (new SSRC, new numbers), the subscriber's
    sequence numbers go on where they were, after the next keyframe."""
    track = make("video", "VP8", start_sequence=100)
    for i in range(5):
        rewrite(track, Packet(7000 + i, 3000 * i, VP8_KEY if i == 0 else VP8_INTER))
    last = track.last_sequence
    track.restart()
    assert offer(track, Packet(20, 99_000, VP8_INTER), 0) is None  # waits for a keyframe
    data = rewrite(track, Packet(21, 102_000, VP8_KEY))
    assert parse(data).sequence_number == (last + 1) & 0xFFFF
    data = rewrite(track, Packet(22, 105_000, VP8_INTER))
    assert parse(data).sequence_number == (last + 2) & 0xFFFF


def test_release_cache_frees_retransmissions() -> None:
    """After the subscription ends its 512-packet cache is dropped."""
    track = make("video", "VP8")
    data = rewrite(track, Packet(1, 0, VP8_KEY))
    sequence = data[2] << 8 | data[3]
    assert track.retransmission(sequence, 0.0) == data
    track.release_cache()
    assert track.retransmission(sequence, 0.0) is None


def test_sequence_gaps_are_preserved() -> None:
    """A publisher loss stays a gap for the subscriber, so it can NACK the SFU."""
    track = make("audio", "opus", start_sequence=100)
    sent = [parse(rewrite(track, Packet(s, 0))).sequence_number for s in (7, 8, 11, 12)]
    assert sent == [100, 101, 104, 105]


@pytest.mark.parametrize(
    ("publisher_first", "subscriber_first"),
    [
        (0, 50_000),
        (0xFFFF_FFFF - 1000, 50_000),  # the publisher's clock wraps
        (3000, 0xFFFF_FFFF - 1000),  # the subscriber's clock wraps
    ],
)
def test_timestamps_shifted_by_a_constant(publisher_first: int, subscriber_first: int) -> None:
    """Timestamps keep their spacing: publisher ts + a constant offset, mod 2^32."""
    track = make("audio", "opus", start_timestamp=subscriber_first)
    steps = [0, 960, 1920, 4800, 4800, 5760]  # a repeated ts: two packets of one frame
    sent = [
        parse(rewrite(track, Packet(i, (publisher_first + step) & 0xFFFF_FFFF))).timestamp
        for i, step in enumerate(steps)
    ]
    assert sent == [(subscriber_first + step) & 0xFFFF_FFFF for step in steps]
    assert track.last_timestamp == sent[-1]


def test_reordered_packet_keeps_its_place() -> None:
    """A late packet after the start is forwarded with its own mapped sequence number."""
    track = make("audio", "opus", start_sequence=500, start_timestamp=0)
    assert parse(rewrite(track, Packet(10, 0))).sequence_number == 500
    assert parse(rewrite(track, Packet(12, 1920))).sequence_number == 502
    late = parse(rewrite(track, Packet(11, 960)))
    assert (late.sequence_number, late.timestamp) == (501, 960)
    # last_sequence/last_timestamp follow the newest packet, not the late one
    assert (track.last_sequence, track.last_timestamp) == (502, 1920)


@pytest.mark.parametrize("older_by", [1, 2, 100, 0x7FFF])
def test_packets_older_than_the_start_are_dropped(older_by: int) -> None:
    """A packet from before the first forwarded one is not sent (it would go backwards)."""
    track = make("audio", "opus", start_sequence=1000)
    first = 5
    rewrite(track, Packet(first, 0))
    assert offer(track, Packet((first - older_by) & 0xFFFF, 0), 0) is None
    assert parse(rewrite(track, Packet(first + 1, 0))).sequence_number == 1001
    assert track.packets_sent == 2


def test_counters_count_payload_octets() -> None:
    """packets_sent and octets_sent count what was sent, octets being payload bytes only."""
    track = make("audio", "opus", ids=ExtensionIds(mid=1, abs_send_time=3, audio_level=5))
    rewrite(track, Packet(1, 0, payload=b"x" * 10))
    rewrite(track, Packet(2, 0, payload=b"y" * 7))
    assert offer(track, Packet(3, 0, payload_type=42), 0) is None
    assert (track.packets_sent, track.octets_sent) == (2, 17)


# Header extensions


@pytest.mark.parametrize(
    ("ids", "mid", "level", "expected_mid", "expected_level"),
    [
        (ExtensionIds(mid=1, abs_send_time=3, audio_level=5), "0", (True, 42), "0", (True, 42)),
        (
            ExtensionIds(mid=4, abs_send_time=2, audio_level=14),
            "12",
            (False, 127),
            "12",
            (False, 127),
        ),
        (ExtensionIds(mid=9, abs_send_time=10, audio_level=11), "abc", (True, 0), "abc", (True, 0)),
        (ExtensionIds(mid=1, audio_level=5), "1234567", (False, 3), "1234567", (False, 3)),
        (ExtensionIds(mid=1, audio_level=5), "x" * 16, (True, 30), "x" * 16, (True, 30)),
        (ExtensionIds(mid=1, abs_send_time=3, audio_level=5), "3", None, "3", None),
        (ExtensionIds(mid=1, abs_send_time=3), "3", (True, 42), "3", None),
        (ExtensionIds(abs_send_time=3, audio_level=5), "3", (True, 42), None, (True, 42)),
        (ExtensionIds(mid=1, abs_send_time=3), "", (True, 42), None, None),
        (ExtensionIds(), "5", (True, 42), None, None),
    ],
)
def test_extensions(
    ids: ExtensionIds,
    mid: str,
    level: tuple[bool, int] | None,
    expected_mid: str | None,
    expected_level: tuple[bool, int] | None,
) -> None:
    """mid and audio level are written with the subscriber's ids, only when negotiated."""
    track = make("audio", "opus", ids=ids, mid=mid)
    source = Packet(1, 0, payload=b"\xaa\xbb", extensions=Extensions(audio_level=level))
    data = rewrite(track, source, abs_send_time=0xABCDEF)
    packet = parse(data, ids)
    assert packet.extensions.mid == expected_mid
    assert packet.extensions.audio_level == expected_level
    assert packet.extensions.abs_send_time == (0xABCDEF if ids.abs_send_time else None)
    assert packet.payload == b"\xaa\xbb"


@pytest.mark.parametrize("value", [0, 1, 0x800000, 0xFFFFFF])
def test_abs_send_time_stamped_per_packet(value: int) -> None:
    """Each packet carries the 24-bit abs-send-time of its own forwarding, not the publisher's."""
    track = make()
    rewrite(track, Packet(1, 0, payload=VP8_KEY), abs_send_time=7)
    packet = parse(rewrite(track, Packet(2, 0, payload=VP8_INTER), abs_send_time=value))
    assert packet.extensions.abs_send_time == value
    assert packet.extensions.mid == "2"


# Keyframe gating


@pytest.mark.parametrize(
    ("codec", "before", "keyframe"),
    [
        ("VP8", [VP8_INTER, VP8_MIDDLE, VP8_INTER], VP8_KEY),
        ("VP8", [bytes([0x11, 0x10])], bytes([0x90, 0x80, 0x81, 0x01, 0x10])),
        ("H264", [H264_SLICE, H264_PPS], stap_a(H264_SPS, H264_PPS)),
        ("H264", [bytes([0x7C, 0x05, 0xB8]), bytes([0x7C, 0x45, 0xB8])], bytes([0x7C, 0x85])),
        ("H264", [stap_a(H264_PPS, H264_SLICE)], bytes([0x65, 0x88, 0x84])),
    ],
    ids=["vp8", "vp8-extended", "h264-stap-a-sps", "h264-fu-a-idr", "h264-single-idr"],
)
def test_video_waits_for_a_keyframe(codec: str, before: list[bytes], keyframe: bytes) -> None:
    """Video sends nothing until a keyframe starts; that keyframe gets the start seq and ts."""
    track = make("video", codec, start_sequence=7, start_timestamp=9000)
    for i, payload in enumerate(before):
        assert offer(track, Packet(100 + i, 3000 * i, payload=payload), 0) is None
        assert track.needs_keyframe and not track.started
    n = len(before)
    first = parse(rewrite(track, Packet(100 + n, 3000 * n, payload=keyframe)))
    assert (first.sequence_number, first.timestamp, first.payload) == (7, 9000, keyframe)
    assert track.started and not track.needs_keyframe
    # after the start, everything of the stream is forwarded, keyframe or not
    for i, payload in enumerate(before, start=1):
        packet = parse(rewrite(track, Packet(100 + n + i, 3000 * (n + i), payload=payload)))
        assert (packet.sequence_number, packet.timestamp) == (7 + i, 9000 + 3000 * i)
        assert packet.payload == payload
    assert track.packets_sent == 1 + len(before)


def test_packets_before_the_keyframe_are_older_than_the_start() -> None:
    """Once video started on a keyframe, packets that preceded it are dropped if they arrive late."""
    track = make("video", "VP8")
    assert offer(track, Packet(20, 0, payload=VP8_INTER), 0) is None
    rewrite(track, Packet(22, 3000, payload=VP8_KEY))
    assert offer(track, Packet(21, 0, payload=VP8_MIDDLE), 0) is None
    assert offer(track, Packet(20, 0, payload=VP8_INTER), 0) is None


def test_audio_needs_no_keyframe() -> None:
    """An audio DownTrack starts on its first packet, whatever the payload."""
    track = make("audio", "opus")
    assert not track.needs_keyframe
    assert parse(rewrite(track, Packet(3, 3, payload=VP8_INTER))).sequence_number == 1000
    assert track.started


# NACK cache


def started_video(count: int, start_sequence: int = 65_500) -> tuple[DownTrack, list[bytes]]:
    track = make("video", "VP8", start_sequence=start_sequence)
    sent = [rewrite(track, Packet(200, 0, payload=VP8_KEY))]
    for i in range(1, count):
        sent.append(
            rewrite(track, Packet(200 + i, 3000 * i, payload=VP8_INTER + bytes([i & 0xFF])))
        )
    return track, sent


def test_retransmission_returns_the_exact_bytes() -> None:
    """A NACKed sequence number gets back the exact bytes sent, across the 16-bit wrap."""
    track, sent = started_video(100)
    for data in sent:
        sequence = parse(data).sequence_number
        assert track.retransmission(sequence, 0.0) == data
    assert track.retransmissions == len(sent)


@pytest.mark.parametrize(
    "sequence",
    [
        65_499,  # just before the start
        (65_500 + 100) & 0xFFFF,  # not sent yet
        (65_500 + 10 - VIDEO_CACHE_SIZE) & 0xFFFF,  # same cache slot, never sent
        (65_500 + 10 + VIDEO_CACHE_SIZE) & 0xFFFF,  # same cache slot, in the future
    ],
)
def test_retransmission_of_an_unsent_sequence(sequence: int) -> None:
    """A sequence number the subscriber never got, even one sharing a cache slot, gets nothing."""
    track, _ = started_video(100)
    assert track.retransmission(sequence, 0.0) is None
    assert track.retransmissions == 0


def test_retransmission_forgets_overwritten_packets() -> None:
    """After VIDEO_CACHE_SIZE newer packets, an old one is gone but its successor is there."""
    track, sent = started_video(VIDEO_CACHE_SIZE + 3, start_sequence=0)
    assert track.retransmission(0, 0.0) is None
    assert track.retransmission(2, 0.0) is None
    assert track.retransmission(3, 0.0) == sent[3]
    assert track.retransmission(VIDEO_CACHE_SIZE, 0.0) == sent[VIDEO_CACHE_SIZE]
    assert track.retransmission(VIDEO_CACHE_SIZE + 2, 0.0) == sent[-1]


def test_audio_keeps_no_cache() -> None:
    """Audio is never retransmitted: no cache, nothing returned."""
    track = make("audio", "opus")
    rewrite(track, Packet(1, 0))
    assert track.retransmission(1000, 0.0) is None


# Sender reports


def test_sender_report_unknown_before_start_or_clock() -> None:
    """No SR mapping before the first packet is forwarded, nor before the publisher's SR."""
    clock = SenderClock(ntp=1 << 32, rtp=0, received_at=0.0)
    track = make("video", "VP8")
    assert track.sender_report(clock, 1.0) is None
    offer(track, Packet(1, 0, payload=VP8_INTER), 0)
    assert track.sender_report(clock, 1.0) is None
    rewrite(track, Packet(2, 0, payload=VP8_KEY))
    assert track.sender_report(None, 1.0) is None
    assert track.sender_report(clock, 1.0) is not None


@pytest.mark.parametrize(
    ("clock_rate", "first_ts", "start_ts", "clock", "now", "expected"),
    [
        # at the SR's arrival: the publisher's own mapping, shifted by our offset
        (90_000, 1000, 51_000, SenderClock(5 << 32, 700, 10.0), 10.0, (5 << 32, 50_700)),
        # 0.5 s later: NTP + 0.5 s, RTP + 45000 ticks
        (
            90_000,
            1000,
            51_000,
            SenderClock(5 << 32, 700, 10.0),
            10.5,
            ((5 << 32) + (NTP_SCALE >> 1), 50_700 + 45_000),
        ),
        # 2.25 s later at 48 kHz, with fractional NTP
        (
            48_000,
            0,
            0,
            SenderClock((3 << 32) | 0x4000_0000, 96_000, 100.0),
            102.25,
            ((5 << 32) | 0x8000_0000, 96_000 + 108_000),
        ),
        # the subscriber's RTP clock wraps
        (
            90_000,
            0,
            0xFFFF_FF00,
            SenderClock(1 << 32, 0x80, 0.0),
            1.0,
            ((2 << 32), (0xFFFF_FF00 + 0x80 + 90_000) & 0xFFFF_FFFF),
        ),
        # the publisher's RTP is behind our offset (negative offset, mod 2^32)
        (90_000, 10_000, 0, SenderClock(1 << 32, 4000, 0.0), 0.0, (1 << 32, 0xFFFF_FFFF - 5999)),
    ],
)
def test_sender_report_maps_the_publisher_clock(
    clock_rate: int,
    first_ts: int,
    start_ts: int,
    clock: SenderClock,
    now: float,
    expected: tuple[int, int],
) -> None:
    """SR (NTP, RTP) at `now`: the publisher's SR advanced by the elapsed time, plus our offset."""
    track = make("audio", "opus", clock_rate=clock_rate, start_timestamp=start_ts)
    rewrite(track, Packet(1, first_ts))
    assert track.sender_report(clock, now) == expected


@pytest.mark.parametrize(
    ("step", "forwarded"),
    [
        (-MAX_BEHIND, True),
        (-MAX_BEHIND - 1, False),
        (-1025, False),  # SRTP would refuse it
        (-30_000, False),
        (MAX_AHEAD, True),
        (MAX_AHEAD + 1, False),
        (30_000, False),
    ],
)
def test_a_packet_out_of_the_stream_is_dropped(step: int, forwarded: bool) -> None:
    """What the subscriber receives stays one continuous stream: a packet far behind (SRTP
    refuses those past 1024) or far ahead of the newest one sent is dropped, and the
    stream goes on as before."""
    track = make("audio", "opus", start_sequence=1000)
    for i in range(600):
        rewrite(track, Packet(5000 + i, 960 * i))
    newest = 5599
    assert (offer(track, Packet((newest + step) & 0xFFFF, 0)) is not None) is forwarded
    if not forwarded:
        assert parse(rewrite(track, Packet(newest + 1, 0))).sequence_number == 1600


def test_retransmissions_have_a_budget() -> None:
    """A subscriber NACKing everything gets RETRANSMISSION_BURST resends at once, then
    RETRANSMISSIONS_PER_SECOND: its NACKs cannot make the SFU resend without limit."""
    track, sent = started_video(VIDEO_CACHE_SIZE)
    sequences = [parse(data).sequence_number for data in sent]
    resent = [track.retransmission(s, 10.0) for s in sequences]
    assert sum(r is not None for r in resent) == RETRANSMISSION_BURST
    assert track.retransmission(sequences[-1], 10.0) is None
    half_a_second_later = [track.retransmission(s, 10.5) for s in sequences]
    assert sum(r is not None for r in half_a_second_later) == RETRANSMISSIONS_PER_SECOND / 2
    assert track.nacks_received == 2 * VIDEO_CACHE_SIZE + 1
