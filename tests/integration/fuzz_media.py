"""Crafted RTP and RTCP for tests/integration/test_fuzz.py: hypothesis strategies for
packet plans (drawn in a child process, fuzz_examples.py), `PacketBuilder`, which makes a
plan concrete against the running call, and `MediaAttacker`, which sends the bytes from a
connected client through its own DTLS transport."""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pylibsrtp
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    RtcpByePacket,
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSenderInfo,
    RtcpSrPacket,
    pack_remb_fci,
)
from hypothesis import strategies as st
from rtc_client import RtcClient

VIDEO_PAYLOAD, RTX_PAYLOAD, AUDIO_PAYLOAD = "video", "rtx", "audio"
# SSRCs the crafted RTP uses; the attacker's own are skipped (its real camera must be able
# to come back, and the SRTP contexts of its real streams must not be disturbed).
FUZZ_SSRCS = (0, 1, 0x0BADF00D, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0x13572468, 0xCAFEBABE)


@dataclass(frozen=True)
class Crafted:
    """A packet plan, made concrete against a running call by `PacketBuilder`."""

    kind: str  # "rtp" or "rtcp"
    parts: tuple[tuple[Any, ...], ...]

    def __repr__(self) -> str:
        shown = "; ".join(
            " ".join(f"{len(v)}B" if isinstance(v, bytes) else str(v) for v in part)
            for part in self.parts
        )
        return f"{self.kind}[{shown}]"


SEQUENCE_MOVES = ["+1"] * 6 + ["small", "forward", "back", "half", "set"]
RTP_DEFECTS = [None] * 8 + ["version", "csrc-truncated", "csrc-15", "extension-truncated",
                            "extension-garbage", "padding-bogus", "padding-only",
                            "empty-payload", "short", "jumbo", "keyframe"]
PAYLOAD_TYPES: list[str | int] = [VIDEO_PAYLOAD, VIDEO_PAYLOAD, VIDEO_PAYLOAD, RTX_PAYLOAD,
                                  AUDIO_PAYLOAD, -1]
# A video packet sent again as RTX, its original sequence number taken from the run's: a
# plausibly late one, or one far ahead of or behind the stream, or anything.
RTX_MOVES = [None] * 6 + ["late", "ahead", "ahead", "behind", "any"]
SAME = "same"  # the SSRC and payload type of the packet before: RTP comes in runs


@st.composite
def rtp_plans(draw: st.DrawFn) -> Crafted:
    """RTP with odd headers, payload types, SSRCs and sequence numbers jumping about.

    Mostly a run on one SSRC and payload type (the forwarding reacts to runs: another SSRC
    restarts a stream, a keyframe starts it again), now and then another SSRC."""
    pick = draw(st.integers(0, 19))
    ssrc: int | str = SAME
    if 14 <= pick < 19:
        ssrc = FUZZ_SSRCS[draw(st.integers(0, len(FUZZ_SSRCS) - 1))]
    elif pick == 19:
        ssrc = draw(st.integers(0, 2**32 - 1))
    payload_type: str | int = SAME
    if ssrc != SAME:
        payload_type = draw(st.sampled_from(PAYLOAD_TYPES))
        if payload_type == -1:
            payload_type = draw(st.integers(0, 127))
    move = draw(st.sampled_from(SEQUENCE_MOVES))
    amount = {
        "+1": lambda: 1,
        "small": lambda: draw(st.integers(-64, 64)),
        "forward": lambda: draw(st.integers(1025, 32767)),
        "back": lambda: -draw(st.integers(1025, 32767)),
        "half": lambda: draw(st.integers(32768, 65535)),
        "set": lambda: draw(st.integers(0, 65535)),
    }[move]()
    timestamp_step = draw(st.sampled_from([3000, 3000, 0, 960, -3000, 2**31, 2**32 - 1]))
    # A new run mostly starts with a keyframe, so that the subscribers take it.
    defect = draw(st.sampled_from(RTP_DEFECTS))
    if ssrc != SAME and draw(st.integers(0, 3)):
        defect = "keyframe"
    rtx: tuple[str, int] | None = None
    rtx_move = draw(st.sampled_from(RTX_MOVES))
    if rtx_move == "late":
        rtx = ("step", -draw(st.integers(0, 5)))
    elif rtx_move == "ahead":
        rtx = ("step", draw(st.integers(1025, 8000)))
    elif rtx_move == "behind":
        rtx = ("step", -draw(st.integers(1025, 32767)))
    elif rtx_move == "any":
        rtx = ("set", draw(st.integers(0, 65535)))
    return Crafted("rtp", ((
        ssrc,
        ("set" if move == "set" else "step", amount),
        timestamp_step,
        payload_type,
        draw(st.booleans()),  # marker
        defect,
        draw(st.binary(max_size=200)),
        rtx,
    ),))


RTCP_KINDS = ["nack"] * 4 + ["pli"] * 3 + ["remb"] * 3 + ["psfb", "sr", "rr", "bye", "sdes",
                                                           "app", "xr", "unknown"]
NACK_SIZES = [1, 2, 10, 50, 100, 300, 500]
NACK_SHAPES = ["consecutive", "spread", "repeated", "repeated"]
REMB_BITRATES = [0, 0, 1, 1000, 9_999, 300_000, 2**40]
RTCP_DEFECTS = [None] * 5 + ["truncate", "length", "version", "padding", "tiny"]


@st.composite
def rtcp_parts(draw: st.DrawFn) -> tuple[Any, ...]:
    """One RTCP packet; `stream` picks one of the four forwarded streams the attacker
    receives (0-1 video, 2-3 audio), so that feedback reaches a real subscription."""
    kind = draw(st.sampled_from(RTCP_KINDS))
    stream = draw(st.integers(0, 3))
    if kind == "nack":  # mostly video (the SFU keeps video to resend), mostly recent
        stream = draw(st.sampled_from([0, 0, 1, 1, 2]))
        return (kind, stream, draw(st.sampled_from([0, 0, 5, 64, 600])),
                draw(st.sampled_from(NACK_SIZES)), draw(st.sampled_from(NACK_SHAPES)))
    if kind == "pli":
        return (kind, stream, draw(st.sampled_from([1, 1, 5, 40])))
    if kind == "remb":
        streams = tuple(range(stream % 3))
        return (kind, draw(st.sampled_from(REMB_BITRATES)), streams,
                draw(st.sampled_from([0, 0, 0, 1, 3, 255])))  # SSRCs claimed, not carried
    if kind in ("sr", "rr"):
        return (kind, stream, draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 31)),
                draw(st.binary(max_size=24)))
    if kind == "bye":
        return (kind, stream, draw(st.integers(0, 2**32 - 1)))
    return (kind, draw(st.integers(0, 31)), draw(st.binary(max_size=40)))


@st.composite
def rtcp_plans(draw: st.DrawFn) -> Crafted:
    """A compound of one to four RTCP packets, then maybe broken as a whole."""
    parts = [draw(rtcp_parts()) for _ in range(draw(st.sampled_from([1, 1, 1, 2, 3, 4])))]
    defect = draw(st.sampled_from(RTCP_DEFECTS))
    return Crafted("rtcp", (*parts, ("defect", defect, draw(st.integers(0, 2**16)))))


def _vp8_keyframe_start(payload: bytes) -> bytes:
    """A VP8 payload descriptor (S=1, PID=0), then a frame header byte with P=0 (key)."""
    return b"\x10" + bytes([(payload[:1] or b"\x00")[0] & 0xFE]) + payload[1:]


class PacketBuilder:
    """Makes `Crafted` plans concrete for one attacker in a running call: its negotiated
    payload types, the streams it receives, and per crafted SSRC the sequence number and
    timestamp reached (so that a jump is a jump from there)."""

    def __init__(
        self,
        *,
        payload_types: dict[str, int],
        own_ssrcs: set[int],
        streams: Sequence[Callable[[], tuple[int, int]]],
    ) -> None:
        self.payload_types = payload_types
        self.own_ssrcs = own_ssrcs
        self.streams = streams  # () -> (SSRC at the attacker, last sequence number received)
        self._sequences: dict[int, int] = {}
        self._timestamps: dict[int, int] = {}
        self._run: tuple[int, int] = (FUZZ_SSRCS[2], 0)  # the current run's SSRC, payload type
        self._undo: tuple[int, int | None, int | None] | None = None

    def refused(self) -> None:
        """The last packet built was not sent protected: the receiver never saw its
        sequence number, so the next ones go on from the one before."""
        if self._undo is not None:
            ssrc, sequence, timestamp = self._undo
            for table, value in ((self._sequences, sequence), (self._timestamps, timestamp)):
                if value is None:
                    table.pop(ssrc, None)
                else:
                    table[ssrc] = value

    def build(self, plan: Crafted) -> bytes:
        self._undo = None
        if plan.kind == "rtp":
            return self._rtp(*plan.parts[0])
        body = b"".join(self._rtcp(*part) for part in plan.parts[:-1])
        _, defect, value = plan.parts[-1]
        return _rtcp_defect(body, defect, value)

    def _rtp(
        self, ssrc: int | str, move: tuple[str, int], timestamp_step: int,
        payload_type: str | int, marker: bool, defect: str | None, payload: bytes,
        rtx: tuple[str, int] | None,
    ) -> bytes:
        if ssrc == SAME:
            ssrc, payload_type = self._run
        assert isinstance(ssrc, int)
        ssrc = self._not_own(ssrc)
        if isinstance(payload_type, str):
            payload_type = self.payload_types[payload_type]
        self._run = (ssrc, payload_type)
        original = b""
        if rtx is not None and payload_type == self.payload_types[VIDEO_PAYLOAD]:
            # Sent again as RTX (RFC 4588): on its own SSRC and numbering, the original
            # sequence number first in the payload, picked from the run's.
            current = self._sequences.get(ssrc, 1000)
            number = (current + rtx[1]) & 0xFFFF if rtx[0] == "step" else rtx[1]
            original = struct.pack("!H", number)
            media_ssrc, ssrc = ssrc, self._not_own(ssrc ^ 0x52545800)
            self._timestamps.setdefault(ssrc, self._timestamps.get(media_ssrc, 0))
            move, timestamp_step = ("step", 1), 0
            payload_type = self.payload_types[RTX_PAYLOAD]
        self._undo = (ssrc, self._sequences.get(ssrc), self._timestamps.get(ssrc))
        previous = self._sequences.get(ssrc, 1000)
        sequence = (previous + move[1]) & 0xFFFF if move[0] == "step" else move[1]
        timestamp = (self._timestamps.get(ssrc, 0) + timestamp_step) & 0xFFFFFFFF
        self._sequences[ssrc], self._timestamps[ssrc] = sequence, timestamp
        first, middle = 0x80, b""
        if defect == "keyframe":
            payload = _vp8_keyframe_start(payload)
        elif defect == "version":
            first = (0x00, 0x40, 0xC0)[len(payload) % 3]
        elif defect == "csrc-truncated":  # 15 CSRCs announced, fewer carried
            first, payload = first | 0x0F, payload[: 4 * (len(payload) % 15)]
        elif defect == "csrc-15":
            first, middle = first | 0x0F, bytes(range(60))
        elif defect == "extension-truncated":
            first, middle = first | 0x10, struct.pack("!HH", 0xBEDE, 200)
        elif defect == "extension-garbage":  # a well-sized block of nonsense elements
            words = payload[: 4 * (len(payload) // 8)]
            profile = 0x1000 if len(payload) % 2 else 0xBEDE
            first, middle = first | 0x10, struct.pack("!HH", profile, len(words) // 4) + words
            payload = payload[len(words) :]
        elif defect == "padding-bogus":  # the padding count says 0, or more than there is
            first, payload = first | 0x20, payload + bytes([0 if len(payload) % 2 else 255])
        elif defect == "padding-only":
            first, payload = first | 0x20, b"\x00\x00\x00\x04"
        elif defect == "empty-payload":
            payload = b""
        elif defect == "jumbo":  # above any MTU (fine on loopback), and SRTP's 1500 bytes
            payload = payload * (3000 // max(1, len(payload))) or bytes(3000)
        header = struct.pack("!BBHII", first, (0x80 if marker else 0) | payload_type,
                             sequence, timestamp, ssrc)
        data = header + middle + original + payload
        return data[: len(payload) % 12] if defect == "short" else data

    def _not_own(self, ssrc: int) -> int:
        while ssrc in self.own_ssrcs:
            ssrc = (ssrc + 1) & 0xFFFFFFFF
        return ssrc

    def _stream(self, index: int) -> tuple[int, int]:
        return self.streams[index % len(self.streams)]()

    def _rtcp(self, kind: str, *args: Any) -> bytes:
        sender = 0x5EED0001
        if kind == "nack":
            stream, back, count, shape = args
            media_ssrc, last = self._stream(stream)
            if shape == "repeated":  # the same 17 packets asked for `count` times over,
                # at most 300 times: 1.2 kB, within any MTU, asking for 5100 packets
                fci = struct.pack("!HH", (last - back - 16) & 0xFFFF, 0xFFFF) * min(count, 300)
                header = struct.pack("!BBHII", 0x81, 205, 2 + len(fci) // 4, sender, media_ssrc)
                return header + fci
            spacing = 17 if shape == "spread" else 1
            lost = sorted({(last - back - i * spacing) & 0xFFFF for i in range(count)})
            return bytes(RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=sender, media_ssrc=media_ssrc,
                                         lost=lost))
        if kind == "pli":
            stream, repeat = args
            pli = RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=sender, media_ssrc=self._stream(stream)[0])
            return bytes(pli) * repeat
        if kind == "remb":
            bitrate, streams, missing = args
            fci = bytearray(pack_remb_fci(bitrate, [self._stream(s)[0] for s in streams]))
            fci[4] = min(255, len(streams) + missing)
            return bytes(RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=sender, media_ssrc=0,
                                        fci=bytes(fci)))
        if kind in ("sr", "rr"):
            stream, value, count, noise = args
            report = RtcpReceiverInfo(ssrc=self._stream(stream)[0], fraction_lost=value & 0xFF,
                                      packets_lost=-1, highest_sequence=value, jitter=value,
                                      lsr=value, dlsr=value)
            if kind == "sr":
                info = RtcpSenderInfo(ntp_timestamp=value << 32 | value, rtp_timestamp=value,
                                      packet_count=value, octet_count=0)
                data = bytes(RtcpSrPacket(ssrc=value, sender_info=info, reports=[report]))
            else:
                data = bytes(RtcpRrPacket(ssrc=value, reports=[report]))
            noise = noise[: 4 * (len(noise) // 4)]
            return _with_count(data + noise, count, grow=len(noise) // 4)
        if kind == "bye":
            stream, other = args
            return bytes(RtcpByePacket(sources=[self._stream(stream)[0], other]))
        count, noise = args
        noise = noise[: 4 * (len(noise) // 4)]
        if kind == "psfb":  # FIR or any other feedback type, around noise
            packet = RtcpPsfbPacket(fmt=RTCP_PSFB_FIR, ssrc=sender, media_ssrc=0, fci=noise)
            return _with_count(bytes(packet), count)
        packet_type = {"sdes": 202, "app": 204, "xr": 207}.get(kind, 192 + count)
        return struct.pack("!BBH", 0x80 | count, packet_type, len(noise) // 4) + noise


def _with_count(data: bytes, count: int, grow: int = 0) -> bytes:
    """The packet with another count (or feedback type) field, and a length field `grow`
    words longer (for what was appended)."""
    length = struct.unpack_from("!H", data, 2)[0] + grow
    first = 0x80 | (data[0] & 0x20) | count
    return bytes([first]) + data[1:2] + struct.pack("!H", length) + data[4:]


def _rtcp_defect(data: bytes, defect: str | None, value: int) -> bytes:
    if defect == "truncate" and len(data) > 8:
        return data[: 8 + value % (len(data) - 8)]
    if defect == "length":
        return data[:2] + struct.pack("!H", value & 0xFFFF) + data[4:]
    if defect == "version":
        return bytes([(data[0] & 0x3F) | ((value % 3) << 6)]) + data[1:]
    if defect == "padding":
        return bytes([data[0] | 0x20]) + data[1:-1] + bytes([value & 0xFF])
    if defect == "tiny":
        return data[: value % 8]
    return data


class MediaAttacker:
    """Sends crafted bytes from a connected client, through its own DTLS transport.

    What libsrtp agrees to protect goes out as SRTP/SRTCP and reaches the server's parsers;
    what it refuses (no valid RTP header) goes out in the clear, for the server's SRTP layer
    to drop. The client's own `_send_rtp` is bypassed: its instrumentation parses RTP.
    """

    def __init__(self, client: RtcClient) -> None:
        self.dtls = client.pc.getTransceivers()[0].receiver.transport
        self.sent: Counter[str] = Counter()

    async def send(self, data: bytes) -> bool:
        """Send `data`; True if it went out protected."""
        srtp = self.dtls._tx_srtp
        # The server's own test: RTCP has 192-208 as its second byte (RFC 5761).
        rtcp = len(data) >= 2 and 192 <= data[1] <= 208
        try:
            data = srtp.protect_rtcp(data) if rtcp else srtp.protect(data)
            protected = True
        except (pylibsrtp.Error, ValueError):
            protected = False
        self.sent[("srtcp" if rtcp else "srtp") if protected else "clear"] += 1
        await self.dtls.transport._send(data)
        return protected
