"""The few RTP header fields the forwarding core reads, parsed lazily from the wire bytes.

aiortc's `RtpPacket.parse` builds a full object per packet, decoding every header
extension; the SFU only needs the fixed header, the payload and, for audio, the level.
Extensions are kept as an (offset, length) into the packet and read only on demand.
"""

from __future__ import annotations

import struct

_FIXED = struct.Struct("!BBHII")
_U16 = struct.Struct("!H")
_EXTENSION_HEADER = struct.Struct("!HH")
ONE_BYTE_PROFILE = 0xBEDE
TWO_BYTE_PROFILE_MASK = 0xFFF0
TWO_BYTE_PROFILE = 0x1000


class RtpHeader:
    """One RTP packet (RFC 3550) as the forwarding core sees it. No I/O, no copies beyond
    the payload slice."""

    __slots__ = (
        "_data",
        "_extension_end",
        "_extension_profile",
        "_extension_start",
        "audio_level",
        "csrc",
        "marker",
        "payload",
        "payload_type",
        "sequence_number",
        "ssrc",
        "timestamp",
    )

    def __init__(
        self,
        *,
        marker: int,
        payload_type: int,
        sequence_number: int,
        timestamp: int,
        ssrc: int,
        payload: bytes,
        csrc: tuple[int, ...] = (),
        audio_level: tuple[bool, int] | None = None,
    ) -> None:
        self.marker = marker
        self.payload_type = payload_type
        self.sequence_number = sequence_number
        self.timestamp = timestamp
        self.ssrc = ssrc
        self.csrc = csrc
        self.payload = payload
        self.audio_level = audio_level
        self._data = b""
        self._extension_start = self._extension_end = self._extension_profile = 0

    @classmethod
    def parse(cls, data: bytes) -> RtpHeader:
        """ValueError if `data` is not a well-formed RTP packet (same checks as aiortc)."""
        if len(data) < 12:
            raise ValueError("RTP packet shorter than 12 bytes")
        first, second, sequence, timestamp, ssrc = _FIXED.unpack_from(data)
        if first >> 6 != 2:
            raise ValueError("RTP version is not 2")
        position = 12
        count = first & 0x0F
        csrc: tuple[int, ...] = ()
        if count:
            position += 4 * count
            if len(data) < position:
                raise ValueError("RTP packet has truncated CSRC")
            csrc = struct.unpack_from(f"!{count}I", data, 12)
        header = cls(
            marker=second >> 7,
            payload_type=second & 0x7F,
            sequence_number=sequence,
            timestamp=timestamp,
            ssrc=ssrc,
            payload=b"",
            csrc=csrc,
        )
        if first & 0x10:
            if len(data) < position + 4:
                raise ValueError("RTP packet has truncated extension header")
            profile, words = _EXTENSION_HEADER.unpack_from(data, position)
            position += 4
            end = position + 4 * words
            if len(data) < end:
                raise ValueError("RTP packet has truncated extensions")
            header._data = data
            header._extension_profile = profile
            header._extension_start = position
            header._extension_end = end
            position = end
        if first & 0x20:
            padding = data[-1]
            if not padding or padding > len(data) - position:
                raise ValueError("RTP packet padding length is invalid")
            header.payload = data[position:-padding]
        else:
            header.payload = data[position:]
        return header

    @property
    def extensions(self) -> RtpHeader:
        """aiortc's `packet.extensions.audio_level` reads the same here."""
        return self

    def extension(self, extension_id: int) -> bytes | None:
        """The value of header extension `extension_id` (RFC 8285), if the packet has it."""
        data, position, end = self._data, self._extension_start, self._extension_end
        if not extension_id or position == end:
            return None
        if self._extension_profile == ONE_BYTE_PROFILE:
            while position < end:
                byte = data[position]
                if byte == 0:  # padding
                    position += 1
                    continue
                element_id, size = byte >> 4, (byte & 0x0F) + 1
                if element_id == 15:  # reserved: stop parsing (RFC 8285 4.2)
                    return None
                position += 1
                if position + size > end:
                    return None
                if element_id == extension_id:
                    return data[position : position + size]
                position += size
        elif self._extension_profile & TWO_BYTE_PROFILE_MASK == TWO_BYTE_PROFILE:
            while position + 1 < end:
                element_id = data[position]
                if element_id == 0:
                    position += 1
                    continue
                size = data[position + 1]
                position += 2
                if position + size > end:
                    return None
                if element_id == extension_id:
                    return data[position : position + size]
                position += size
        return None

    def read_audio_level(self, extension_id: int) -> None:
        """Fill `audio_level` (voice activity, level in -dBov) from ssrc-audio-level."""
        value = self.extension(extension_id)
        if value:
            self.audio_level = (bool(value[0] & 0x80), value[0] & 0x7F)

    def unwrap_rtx(self, payload_type: int, ssrc: int) -> RtpHeader:
        """The original packet inside this RTX packet (RFC 4588); its payload must have at
        least the 2 bytes of the original sequence number."""
        unwrapped = RtpHeader(
            marker=self.marker,
            payload_type=payload_type,
            sequence_number=_U16.unpack_from(self.payload)[0],
            timestamp=self.timestamp,
            ssrc=ssrc,
            payload=self.payload[2:],
            csrc=self.csrc,
            audio_level=self.audio_level,
        )
        return unwrapped
