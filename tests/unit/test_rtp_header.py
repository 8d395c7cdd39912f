"""RtpHeader reads what aiortc's RtpPacket.parse reads, and refuses what it refuses."""

from __future__ import annotations

import pytest
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket, unwrap_rtx, wrap_rtx

from kaamos_sfu.forwarding import RtpHeader

AUDIO_LEVEL_ID = 3
URI_AUDIO_LEVEL = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"


def extensions_map() -> HeaderExtensionsMap:
    mapping = HeaderExtensionsMap()
    mapping.configure(
        RTCRtpParameters(
            headerExtensions=[
                RTCRtpHeaderExtensionParameters(id=1, uri="urn:ietf:params:rtp-hdrext:sdes:mid"),
                RTCRtpHeaderExtensionParameters(id=AUDIO_LEVEL_ID, uri=URI_AUDIO_LEVEL),
            ]
        )
    )
    return mapping


def packet(**fields: object) -> RtpPacket:
    made = RtpPacket(payload_type=111, sequence_number=65535, timestamp=0xFFFFFFF0, ssrc=0xABCDEF01)
    for name, value in fields.items():
        setattr(made, name, value)
    return made


CASES = {
    "plain": packet(payload=b"\x01\x02\x03", marker=1),
    "csrc": packet(payload=b"x" * 40, csrc=[1, 0xFFFFFFFF]),
    "padding": packet(payload=b"abc", padding_size=7),
    "empty payload": packet(payload=b""),
}


def serialize(
    made: RtpPacket, mid: str | None = None, level: tuple[bool, int] | None = None
) -> bytes:
    made.extensions.mid = mid
    made.extensions.audio_level = level
    return made.serialize(extensions_map())


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize(
    ("mid", "level"), [(None, None), ("0", (True, 42)), ("12345", (False, 127))]
)
def test_fields_match_aiortc(name: str, mid: str | None, level: tuple[bool, int] | None) -> None:
    """Every field the forwarding core reads, with and without extensions and padding."""
    data = serialize(CASES[name], mid, level)
    expected = RtpPacket.parse(data, extensions_map())
    header = RtpHeader.parse(data)
    header.read_audio_level(AUDIO_LEVEL_ID)
    assert (header.marker, header.payload_type, header.sequence_number) == (
        expected.marker,
        expected.payload_type,
        expected.sequence_number,
    )
    assert (header.timestamp, header.ssrc) == (expected.timestamp, expected.ssrc)
    assert list(header.csrc) == expected.csrc
    assert header.payload == expected.payload
    assert header.extensions.audio_level == expected.extensions.audio_level == level
    assert header.extension(1) == (mid.encode() if mid else None)


def test_two_byte_extensions() -> None:
    """RFC 8285 two-byte elements (profile 0x100X) are read too."""
    data = (
        bytes(
            [
                0x90,
                111,
                0,
                1,
                0,
                0,
                0,
                2,
                0,
                0,
                0,
                3,
                0x10,
                0x00,
                0,
                2,
                AUDIO_LEVEL_ID,
                1,
                0x85,
                0,
                7,
                0,
                0,
                0,
            ]
        )
        + b"opus"
    )
    header = RtpHeader.parse(data)
    header.read_audio_level(AUDIO_LEVEL_ID)
    assert header.audio_level == (True, 5)
    assert header.extension(7) == b""
    assert header.payload == b"opus"


def test_unwrap_rtx_matches_aiortc() -> None:
    """The original packet comes back out of an RTX packet, as aiortc unwraps it."""
    original = packet(payload=b"frame data", payload_type=96, sequence_number=1234)
    rtx = wrap_rtx(original, payload_type=97, sequence_number=9, ssrc=0x77)
    expected = unwrap_rtx(RtpPacket.parse(rtx.serialize()), payload_type=96, ssrc=0xABCDEF01)
    header = RtpHeader.parse(rtx.serialize()).unwrap_rtx(96, 0xABCDEF01)
    assert (header.sequence_number, header.payload_type, header.ssrc, header.payload) == (
        expected.sequence_number,
        expected.payload_type,
        expected.ssrc,
        expected.payload,
    )


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x80\x60\x00\x01\x00\x00",  # shorter than the fixed header
        b"\x40" + bytes(11),  # version 1
        b"\x82" + bytes(11) + b"\0\0\0\1",  # two CSRCs announced, one present
        b"\x90" + bytes(11) + b"\xbe\xde",  # extension header cut
        b"\x90" + bytes(11) + b"\xbe\xde\x00\x02\x10\x00",  # extension words missing
        b"\xa0" + bytes(11) + b"ab\x00",  # padding length 0
        b"\xa0" + bytes(11) + b"ab\x09",  # padding longer than the payload
    ],
)
def test_malformed_packets_are_refused(data: bytes) -> None:
    """Whatever aiortc refuses raises ValueError here too, never another exception."""
    with pytest.raises(ValueError):
        RtpPacket.parse(data)
    with pytest.raises(ValueError):
        RtpHeader.parse(data)
