"""Keyframe-start detection from RTP payload bytes: VP8 (RFC 7741) and H264 (RFC 6184)."""

from __future__ import annotations

import pytest
from rtp_fakes import H264_IDR as IDR
from rtp_fakes import H264_PPS as PPS
from rtp_fakes import H264_SLICE as SLICE
from rtp_fakes import H264_SPS as SPS
from rtp_fakes import stap_a

from kaamos_sfu.forwarding.keyframe import (
    h264_starts_keyframe,
    starts_keyframe,
    vp8_starts_keyframe,
)

# VP8 payload descriptor, first byte: X=0x80, N=0x20, S=0x10, PID=0x07.
# Extension byte: I=0x80 (PictureID), L=0x40 (TL0PICIDX), T=0x20, K=0x10 (TID/KEYIDX byte).
# First byte of the VP8 payload header: bit 0 is P, 0 for a key frame.
KEY = 0x10  # P=0
INTER = 0x11  # P=1

VP8_CASES = [
    ("empty", b"", False),
    ("descriptor only", bytes([0x10]), False),
    ("start of partition 0, key frame", bytes([0x10, KEY]), True),
    ("start of partition 0, inter frame", bytes([0x10, INTER]), False),
    ("not a start (S=0)", bytes([0x00, KEY]), False),
    ("start of partition 1", bytes([0x11, KEY]), False),
    ("start of partition 7", bytes([0x17, KEY]), False),
    ("non-reference bit does not matter", bytes([0x30, KEY]), True),
    ("X set, extension byte missing", bytes([0x90]), False),
    ("X set, no optional fields", bytes([0x90, 0x00, KEY]), True),
    ("X set, no optional fields, inter frame", bytes([0x90, 0x00, INTER]), False),
    ("7-bit PictureID, key frame", bytes([0x90, 0x80, 0x05, KEY]), True),
    ("7-bit PictureID, inter frame", bytes([0x90, 0x80, 0x05, INTER]), False),
    ("7-bit PictureID that looks like an inter header", bytes([0x90, 0x80, 0x01, KEY]), True),
    ("PictureID announced but missing", bytes([0x90, 0x80]), False),
    ("7-bit PictureID, header missing", bytes([0x90, 0x80, 0x05]), False),
    # A 15-bit PictureID (M bit set) takes two bytes: the second must not be read as header.
    ("15-bit PictureID, key frame", bytes([0x90, 0x80, 0x81, 0x01, KEY]), True),
    ("15-bit PictureID, inter frame", bytes([0x90, 0x80, 0x80, 0x00, INTER]), False),
    ("15-bit PictureID, header missing", bytes([0x90, 0x80, 0x81, 0x23]), False),
    ("TL0PICIDX only", bytes([0x90, 0x40, 0x01, KEY]), True),
    ("TL0PICIDX only, inter frame", bytes([0x90, 0x40, 0x00, INTER]), False),
    ("TID byte (T) only", bytes([0x90, 0x20, 0x01, KEY]), True),
    ("KEYIDX byte (K) only", bytes([0x90, 0x10, 0x01, KEY]), True),
    ("T and K share one byte", bytes([0x90, 0x30, 0x01, KEY]), True),
    ("T and K share one byte, inter frame", bytes([0x90, 0x30, 0x00, INTER]), False),
    (
        "all of I (15-bit), L, T and K",
        bytes([0x90, 0xF0, 0x81, 0x01, 0x01, 0x01, KEY]),
        True,
    ),
    (
        "all of I (15-bit), L, T and K, inter frame",
        bytes([0x90, 0xF0, 0x80, 0x00, 0x00, 0x00, INTER]),
        False,
    ),
    ("all fields, header missing", bytes([0x90, 0xF0, 0x81, 0x01, 0x01, 0x01]), False),
]


@pytest.mark.parametrize(
    ("payload", "expected"),
    [c[1:] for c in VP8_CASES],
    ids=[c[0] for c in VP8_CASES],
)
def test_vp8(payload: bytes, expected: bool) -> None:
    """A VP8 payload starts a keyframe only at S=1, PID=0 with P=0 after all optional fields."""
    assert vp8_starts_keyframe(payload) is expected


SEI = bytes([0x06, 0x05, 0x01])  # type 6

H264_CASES = [
    ("empty", b"", False),
    ("one byte", bytes([0x65]), False),
    ("single IDR NAL", IDR, True),
    ("single IDR NAL, NRI 1", bytes([0x25, 0x88]), True),
    ("single SPS NAL", SPS, True),
    ("single PPS NAL", PPS, False),
    ("single non-IDR slice", SLICE, False),
    ("single SEI", SEI, False),
    ("STAP-A with SPS and PPS", stap_a(SPS, PPS), True),
    ("STAP-A with PPS then IDR", stap_a(PPS, IDR), True),
    ("STAP-A with SEI, PPS, SPS", stap_a(SEI, PPS, SPS), True),
    ("STAP-A with PPS and a slice", stap_a(PPS, SLICE), False),
    # One PPS whose body bytes look like SPS and IDR headers: sizes must be followed.
    ("STAP-A whose body holds an SPS-like byte", stap_a(bytes([0x68, 0x67, 0x65])), False),
    ("STAP-A header only", bytes([0x78, 0x00]), False),
    ("STAP-A truncated after size", bytes([0x78, 0x00, 0x04]), False),
    ("FU-A start of IDR", bytes([0x7C, 0x85, 0xB8]), True),
    ("FU-A start of IDR, NRI 1", bytes([0x3C, 0x85]), True),
    ("FU-A middle of IDR", bytes([0x7C, 0x05, 0xB8]), False),
    ("FU-A end of IDR", bytes([0x7C, 0x45, 0xB8]), False),
    ("FU-A start of non-IDR slice", bytes([0x5C, 0x81, 0x9A]), False),
    ("FU-A start of SPS", bytes([0x7C, 0x87]), True),
    ("FU-A header missing", bytes([0x7C]), False),
]


@pytest.mark.parametrize(
    ("payload", "expected"),
    [c[1:] for c in H264_CASES],
    ids=[c[0] for c in H264_CASES],
)
def test_h264(payload: bytes, expected: bool) -> None:
    """An H264 payload starts a keyframe when an SPS or IDR begins, in any packetization."""
    assert h264_starts_keyframe(payload) is expected


@pytest.mark.parametrize(
    ("codec", "payload", "expected"),
    [
        ("VP8", bytes([0x10, KEY]), True),
        ("VP8", bytes([0x10, INTER]), False),
        ("VP8", IDR, False),  # an H264 IDR header read as VP8: S bit clear
        ("H264", IDR, True),
        ("H264", SLICE, False),
        ("H264", bytes([0x10, KEY]), False),  # a VP8 key frame read as H264: type 16
        ("opus", b"", True),
        ("opus", bytes([0x78, 0x00]), True),
    ],
)
def test_starts_keyframe_dispatches_on_codec(codec: str, payload: bytes, expected: bool) -> None:
    """starts_keyframe uses the codec's own rule, and any audio packet is a start."""
    assert starts_keyframe(codec, payload) is expected
