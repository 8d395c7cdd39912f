"""Synthetic RTP for the forwarding core's unit tests: payloads that start a keyframe or do
not, and the packets and sinks that stand in for aiortc's."""

from __future__ import annotations

from dataclasses import dataclass, field

PUBLISHER_SSRC = 0x5EED0001

VP8_KEY = bytes([0x10, 0x10, 0x9D, 0x01, 0x2A])  # S=1, PID=0, P=0
VP8_INTER = bytes([0x10, 0x11, 0x00])  # P=1
VP8_MIDDLE = bytes([0x00, 0x42, 0x42])  # S=0: continues a frame

H264_SPS = bytes([0x67, 0x42, 0xE0, 0x1F])  # NRI 3, type 7
H264_PPS = bytes([0x68, 0xCE, 0x3C, 0x80])  # type 8
H264_IDR = bytes([0x65, 0x88, 0x84])  # type 5
H264_SLICE = bytes([0x41, 0x9A, 0x02])  # type 1, non-IDR


def stap_a(*nal_units: bytes) -> bytes:
    """An RFC 6184 STAP-A (type 24) aggregating the given NAL units."""
    body = b"".join(len(n).to_bytes(2, "big") + n for n in nal_units)
    return bytes([0x78]) + body


@dataclass
class Extensions:
    audio_level: tuple[bool, int] | None = None


@dataclass
class Packet:
    """The fields of aiortc's RtpPacket that the forwarding core reads."""

    sequence_number: int
    timestamp: int = 0
    payload: bytes = b"\x01\x02\x03"
    marker: int = 0
    payload_type: int = 96
    ssrc: int = PUBLISHER_SSRC
    csrc: list[int] = field(default_factory=list)
    extensions: object = field(default_factory=Extensions)  # as aiortc's: .audio_level


class Sink:
    """Records the bytes a DownTrack sends; can run a hook while "sending"."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.hook = lambda: None

    def send_rtp(self, data: bytes) -> None:
        self.sent.append(data)
        self.hook()
