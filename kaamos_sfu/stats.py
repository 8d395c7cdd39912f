"""Plain counters for /metrics, summed from the forwarding objects at scrape time.

The per-packet code only increments int attributes it already owns (UpTrack, DownTrack);
nothing here runs per packet. Forwarding objects come and go (a peer leaves, a source is
unpublished, an m-line is reused), so what they counted is carried over into a `retired`
`MediaCounts` when they are dropped: the totals never go down.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field

from .forwarding import DownTrack, UpTrack


@dataclass
class MediaCounts:
    packets_received: int = 0  # RTP from publishers
    packets_forwarded: int = 0  # RTP sent to subscribers (retransmissions not included)
    bytes_forwarded: int = 0  # their payload bytes
    packets_dropped: int = 0  # subscriber copies not sent: before a keyframe, late, no codec
    nacks_received: int = 0  # sequence numbers subscribers asked for again
    retransmissions: int = 0  # of those, the ones resent from the cache
    nacks_sent: int = 0  # NACK packets the SFU sent to publishers for what it missed
    keyframe_requests_received: int = 0  # PLI/FIR from subscribers
    keyframe_requests_sent: int = 0  # PLIs the SFU sent to publishers
    packets_discarded: int = 0  # publisher packets that fit no stream (jumps, stray RTX)
    rtcp_malformed: int = 0  # client RTCP that could not be parsed or taken
    rtcp_over_limit: int = 0  # client RTCP above the per-peer rate
    srtp_send_failures: int = 0  # packets SRTP refused to protect (never expected)

    def add_uptrack(self, uptrack: UpTrack) -> None:
        self.packets_received += uptrack.packets_received
        self.packets_dropped += uptrack.packets_dropped
        self.packets_discarded += uptrack.packets_discarded
        self.nacks_sent += uptrack.nacks_sent
        self.keyframe_requests_sent += uptrack.keyframe_requests

    def add_downtrack(self, downtrack: DownTrack) -> None:
        self.packets_forwarded += downtrack.packets_sent
        self.bytes_forwarded += downtrack.octets_sent
        self.nacks_received += downtrack.nacks_received
        self.retransmissions += downtrack.retransmissions
        self.keyframe_requests_received += downtrack.keyframe_requests

    def add(self, other: MediaCounts) -> None:
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


@dataclass
class CallCounts:
    """Signaling and API events, counted as they happen (never per packet)."""

    joins: int = 0
    leaves: Counter[str] = field(default_factory=Counter)  # by reason
    join_refusals: Counter[str] = field(default_factory=Counter)  # by error code
    rate_limited: Counter[str] = field(default_factory=Counter)  # by limit
    rooms_created: int = 0
    rooms_deleted: int = 0
