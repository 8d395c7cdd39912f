"""One published source as one subscriber receives it: RTP rewriting and its state.

The payload is never touched. The header gets the subscriber's SSRC, continuous sequence
numbers, timestamps shifted by a constant, the subscriber's payload type, and header
extensions with the subscriber's ids: its mid, a fresh abs-send-time, and the audio level.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

_HEADER = struct.Struct("!BBHII")
_EXTENSION_HEADER = struct.Struct("!HH")
_U32 = struct.Struct("!I")
_CSRC = struct.Struct("!I")
ONE_BYTE_EXTENSIONS = 0xBEDE
VIDEO_CACHE_SIZE = 512  # packets kept to answer NACKs (about 0.6 s at 800 kbps)
NTP_SCALE = 1 << 32
# The stream a subscriber receives stays continuous: a packet more than MAX_BEHIND
# before the newest one sent (SRTP refuses those past 1024) or more than MAX_AHEAD
# after it is dropped. Numbering that really starts over comes as a restart instead.
MAX_BEHIND = VIDEO_CACHE_SIZE
MAX_AHEAD = 3000
# Retransmissions a subscriber's NACKs may cost: a bucket of this many, refilled at this
# rate per second (a hostile or broken client must not make the SFU resend everything).
RETRANSMISSION_BURST = 200
RETRANSMISSIONS_PER_SECOND = 200.0


class RtpPacketLike(Protocol):
    """What the forwarding core reads from a parsed RTP packet (an RtpHeader)."""

    marker: int
    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    payload: bytes

    @property
    def csrc(self) -> Sequence[int]: ...

    @property
    def extensions(self) -> object:  # has .audio_level: tuple[bool, int] | None
        ...


class RtpSink(Protocol):
    """Where a DownTrack's bytes go: SRTP and the subscriber's UDP socket."""

    def send_rtp(self, data: bytes) -> None: ...


@dataclass(frozen=True)
class ExtensionIds:
    """Header extension ids the subscriber negotiated for this m-line (0: not negotiated).

    One-byte header extensions (RFC 8285) only have ids 1 to 14; any other id is refused
    here, so a subscriber's odd answer can never make the per-packet code fail.
    """

    mid: int = 0
    abs_send_time: int = 0
    audio_level: int = 0

    def __post_init__(self) -> None:
        for name in ("mid", "abs_send_time", "audio_level"):
            if not 0 <= getattr(self, name) <= 14:
                raise ValueError(f"header extension id {name}={getattr(self, name)} not in 1-14")


@dataclass(frozen=True)
class SenderClock:
    """A publisher's NTP↔RTP mapping from its last sender report, and when it arrived."""

    ntp: int  # 64-bit NTP timestamp
    rtp: int
    received_at: float  # local monotonic seconds


class DownTrack:
    def __init__(
        self,
        *,
        sink: RtpSink,
        ssrc: int,
        kind: str,
        codec_name: str,
        clock_rate: int,
        payload_types: dict[int, int],
        mid: str,
        extension_ids: ExtensionIds,
        start_sequence: int,
        start_timestamp: int,
    ) -> None:
        self.sink = sink
        self.ssrc = ssrc
        self.kind = kind
        self.codec_name = codec_name
        self.clock_rate = clock_rate
        self.payload_types = payload_types  # publisher's payload type -> subscriber's
        self.extension_ids = extension_ids
        self._start_sequence = start_sequence
        self._start_timestamp = start_timestamp
        self.started = False
        self.needs_keyframe = kind == "video"  # no video until a keyframe starts
        self._guarding_start = True  # drop late packets from before the first one sent
        self._first_in_sequence = 0
        self._sequence_offset = 0
        self._timestamp_offset = 0
        self.last_sequence = (start_sequence - 1) & 0xFFFF
        self.last_timestamp = start_timestamp
        self._cache: list[bytes | None] = [None] * (VIDEO_CACHE_SIZE if kind == "video" else 0)
        self.packets_sent = 0
        self.octets_sent = 0
        self.retransmissions = 0
        self.nacks_received = 0
        self._resend_tokens = float(RETRANSMISSION_BURST)
        self._resend_refilled_at = 0.0
        self.keyframe_requests = 0  # PLI/FIR from this subscriber, counted by the bridge
        self.remb_bps: int | None = None  # the subscriber's share of its bandwidth estimate
        self._layouts = _extension_layouts(extension_ids, mid)
        self._abs_send_time_prefix = (extension_ids.abs_send_time << 28) | (2 << 24)
        self._audio_level_byte = extension_ids.audio_level << 4

    def rewrite(self, packet: RtpPacketLike, abs_send_time: int, keyframe: bool) -> bytes | None:
        """The packet as this subscriber must receive it, or None to skip it. `keyframe`:
        the packet starts a keyframe (always True for audio)."""
        payload_type = self.payload_types.get(packet.payload_type)
        if payload_type is None:
            return None
        if not self.started:
            if not keyframe:
                return None
            self._start(packet)
        elif self._guarding_start:
            ahead = (packet.sequence_number - self._first_in_sequence) & 0xFFFF
            if ahead >= 0x8000:
                return None  # older than the first packet we forwarded
            if ahead > 0x1000:
                self._guarding_start = False  # far past the start: no late packet left
        sequence = (packet.sequence_number + self._sequence_offset) & 0xFFFF
        step = (sequence - self.last_sequence) & 0xFFFF
        if MAX_AHEAD < step < 0x10000 - MAX_BEHIND:
            return None  # out of the stream: SRTP would refuse what follows, or this
        timestamp = (packet.timestamp + self._timestamp_offset) & 0xFFFFFFFF
        level = packet.extensions.audio_level if self._audio_level_byte else None  # type: ignore[attr-defined]
        prefix, padding = self._layouts[level is not None]
        parts = [
            _HEADER.pack(
                0x90 | len(packet.csrc),
                (0x80 if packet.marker else 0) | payload_type,
                sequence,
                timestamp,
                self.ssrc,
            )
        ]
        if packet.csrc:
            parts.extend(_CSRC.pack(c) for c in packet.csrc)
        parts.append(prefix)
        if self._abs_send_time_prefix >> 28:
            parts.append(_U32.pack(self._abs_send_time_prefix | abs_send_time))
        if level is not None:
            vad, value = level
            parts.append(bytes((self._audio_level_byte, (0x80 if vad else 0) | (value & 0x7F))))
        parts.append(padding)
        parts.append(packet.payload)
        data = b"".join(parts)
        if step <= MAX_AHEAD:
            self.last_sequence = sequence
            self.last_timestamp = timestamp
        if self._cache:
            self._cache[sequence % VIDEO_CACHE_SIZE] = data
        self.packets_sent += 1
        self.octets_sent += len(packet.payload)
        return data

    def restart(self) -> None:
        """The publisher's stream started over (a new SSRC, new sequence numbers): go on
        from where this subscriber's stream is, from the next keyframe."""
        self.started = False
        self.needs_keyframe = self.kind == "video"
        self._guarding_start = True
        self._start_sequence = (self.last_sequence + 1) & 0xFFFF
        self._start_timestamp = (self.last_timestamp + self.clock_rate // 10) & 0xFFFFFFFF

    def release_cache(self) -> None:
        """Free the retransmission cache once this subscription has ended."""
        self._cache = []

    def retransmission(self, sequence: int, now: float) -> bytes | None:
        """The packet this subscriber NACKed, from the cache, if we still have it and the
        subscriber's retransmission budget allows (`now`: monotonic seconds)."""
        self.nacks_received += 1
        if not self._cache:
            return None
        data = self._cache[sequence % VIDEO_CACHE_SIZE]
        if data is None or ((data[2] << 8) | data[3]) != sequence:
            return None
        elapsed = max(0.0, now - self._resend_refilled_at)
        self._resend_refilled_at = now
        tokens = self._resend_tokens + elapsed * RETRANSMISSIONS_PER_SECOND
        self._resend_tokens = min(float(RETRANSMISSION_BURST), tokens)
        if self._resend_tokens < 1.0:
            return None
        self._resend_tokens -= 1.0
        self.retransmissions += 1
        return data

    def sender_report(self, clock: SenderClock | None, now: float) -> tuple[int, int] | None:
        """(NTP, RTP) for a sender report at `now`, on the publisher's clock, if known."""
        if clock is None or not self.started:
            return None
        elapsed = now - clock.received_at
        ntp = (clock.ntp + int(elapsed * NTP_SCALE)) & 0xFFFFFFFFFFFFFFFF
        rtp = (clock.rtp + self._timestamp_offset + int(elapsed * self.clock_rate)) & 0xFFFFFFFF
        return ntp, rtp

    def _start(self, packet: RtpPacketLike) -> None:
        self.started = True
        self.needs_keyframe = False
        self._first_in_sequence = packet.sequence_number
        self._sequence_offset = (self._start_sequence - packet.sequence_number) & 0xFFFF
        self._timestamp_offset = (self._start_timestamp - packet.timestamp) & 0xFFFFFFFF


def _extension_layouts(ids: ExtensionIds, mid: str) -> tuple[tuple[bytes, bytes], ...]:
    """The fixed parts of the header extension block, without and with an audio level.

    Only abs-send-time and the audio level change from packet to packet, so everything
    else (profile, length, the mid element, padding) is computed once per subscription.
    Index the result with `has_audio_level`: (bytes before the varying fields, padding).
    """
    mid_bytes = mid.encode()[:16]  # a one-byte extension element carries 1 to 16 bytes
    has_mid = bool(ids.mid and mid_bytes)
    mid_element = bytes([(ids.mid << 4) | (len(mid_bytes) - 1)]) + mid_bytes if has_mid else b""
    layouts = []
    for has_level in (False, True):
        size = len(mid_element) + (4 if ids.abs_send_time else 0) + (2 if has_level else 0)
        padding = -size % 4
        prefix = _EXTENSION_HEADER.pack(ONE_BYTE_EXTENSIONS, (size + padding) >> 2) + mid_element
        layouts.append((prefix, b"\0" * padding))
    return tuple(layouts)
