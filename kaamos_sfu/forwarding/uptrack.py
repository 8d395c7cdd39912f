"""One published source as it arrives at the SFU, and the subscribers it fans out to."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from .downtrack import VIDEO_CACHE_SIZE, DownTrack, RtpPacketLike, SenderClock
from .keyframe import starts_keyframe
from .receive_stats import Arrival, ReceiveStats
from .rtp_header import RtpHeader

log = logging.getLogger(__name__)

KEYFRAME_REQUEST_INTERVAL = 0.5  # at most one PLI upstream per track per 500 ms
ABS_SEND_TIME_MASK = 0xFFFFFF
# A subscriber's REMB is never taken below this: a client's estimate of 0 (or a forged
# one) must not stop a publisher's video for everyone. Chrome's own floor is 30 kbps.
MIN_BANDWIDTH_ESTIMATE = 30_000
NO_LOSS: tuple[int, ...] = ()


def abs_send_time(now: float) -> int:
    """The 24-bit abs-send-time value (6.18 fixed-point seconds) for wall-clock `now`."""
    return int(now * (1 << 18)) & ABS_SEND_TIME_MASK


class UpTrack:
    """Receives one source's RTP from the bridge and writes it to every DownTrack.

    Subscribers change rarely and packets arrive often, so the list of DownTracks is an
    immutable tuple replaced on attach/detach: the per-packet loop never copies it, and a
    change made while the loop runs (a failing subscription detaches itself) does not
    disturb the iteration.
    """

    def __init__(
        self,
        *,
        peer_id: str,
        source: str,
        kind: str,
        codec_name: str,
        clock_rate: int,
        payload_type: int,
        request_keyframe: Callable[[int], None],
    ) -> None:
        self.peer_id = peer_id
        self.source = source
        self.kind = kind
        self._audio = kind == "audio"  # every audio packet starts a "keyframe"
        self.codec_name = codec_name
        self.clock_rate = clock_rate
        self.payload_type = payload_type
        self.media_ssrc: int | None = None  # learned from the first packet
        self.stats = ReceiveStats(clock_rate)
        self.sender_clock: SenderClock | None = None
        self.downtracks: tuple[DownTrack, ...] = ()
        self._request_keyframe = request_keyframe
        self._last_keyframe_request = -KEYFRAME_REQUEST_INTERVAL
        self._keyframe_pending = False  # requested, and no keyframe has arrived since
        self.packets_received = 0
        self.keyframe_requests = 0
        self.packets_dropped = 0  # subscriber copies not sent (read by /metrics)
        self.packets_discarded = 0  # publisher packets that fit no stream (jumps, stray RTX)
        self.nacks_sent = 0  # NACKs asked for upstream

    def attach(self, downtrack: DownTrack) -> None:
        self.downtracks = self.downtracks + (downtrack,)

    def detach(self, downtrack: DownTrack) -> None:
        self.downtracks = tuple(d for d in self.downtracks if d is not downtrack)

    def receive(self, packet: RtpHeader, now: float) -> tuple[int, ...]:
        """One media packet from the publisher (not RTX): follow its SSRC and numbering,
        count it and forward it. Returns the sequence numbers to NACK now (video, when it
        revealed a loss), else an empty tuple."""
        if packet.ssrc != self.media_ssrc:
            if self.media_ssrc is None:
                self.media_ssrc = packet.ssrc
            else:
                self.restart(packet.ssrc)
        arrival = self.stats.add(packet.sequence_number, packet.timestamp, now)
        if arrival is Arrival.JUMP:
            self.packets_discarded += 1
            return NO_LOSS
        if arrival is Arrival.RESTART:  # same SSRC, new numbering (RFC 3550 A.1)
            self.restart(packet.ssrc)
            arrival = self.stats.add(packet.sequence_number, packet.timestamp, now)
        self.forward(packet)
        if arrival is Arrival.LOSS and self.kind == "video":
            self.nacks_sent += 1
            return tuple(sorted(self.stats.missing))
        return NO_LOSS

    def receive_rtx(self, packet: RtpHeader, media_payload_type: int) -> None:
        """One RTX packet (RFC 4588): forward the packet inside if it is one we may still
        be missing, and not from before or beyond the stream (a stray or forged number)."""
        if len(packet.payload) < 2 or self.media_ssrc is None:
            return  # padding only: a bandwidth probe
        original = packet.unwrap_rtx(media_payload_type, self.media_ssrc)
        if not self.stats.is_recent(original.sequence_number, VIDEO_CACHE_SIZE):
            self.packets_discarded += 1
            return
        self.stats.missing.discard(original.sequence_number)
        self.forward(original)

    def forward(self, packet: RtpPacketLike) -> None:
        """Hand one packet (already unwrapped from RTX) to every subscriber."""
        self.packets_received += 1
        if not packet.payload:
            return  # padding only: bandwidth probing between publisher and us
        keyframe = self._audio or starts_keyframe(self.codec_name, packet.payload)
        if keyframe:
            self._keyframe_pending = False
        send_time = abs_send_time(time.time())
        waiting = False
        for downtrack in self.downtracks:
            try:
                data = downtrack.rewrite(packet, send_time, keyframe)
                if data is not None:
                    downtrack.sink.send_rtp(data)
                else:
                    self.packets_dropped += 1
                    if downtrack.needs_keyframe:
                        waiting = True
            except Exception:  # one broken subscription must not stop the others
                log.exception("dropping a failing subscription", extra={"peer_id": self.peer_id})
                self.detach(downtrack)
        if waiting:
            self.request_keyframe()

    def request_keyframe(self, new_subscriber: bool = False) -> None:
        """Ask the publisher for a keyframe, at most once per KEYFRAME_REQUEST_INTERVAL.

        A new subscriber need not wait out the interval when the last request has already
        been answered with a keyframe: its video would otherwise start up to 0.5 s late
        whenever someone else joined just before. Subscribers' own PLIs never skip it."""
        if self.kind != "video" or self.media_ssrc is None:
            return
        now = time.monotonic()
        answered = new_subscriber and not self._keyframe_pending
        if now - self._last_keyframe_request < KEYFRAME_REQUEST_INTERVAL and not answered:
            return
        self._last_keyframe_request = now
        self._keyframe_pending = True
        self.keyframe_requests += 1
        self._request_keyframe(self.media_ssrc)

    def restart(self, media_ssrc: int) -> None:
        """The publisher now sends on another SSRC: its numbering starts over."""
        self.media_ssrc = media_ssrc
        self.stats = ReceiveStats(self.clock_rate)
        self.sender_clock = None
        for downtrack in self.downtracks:
            downtrack.restart()

    def on_sender_report(self, ntp: int, rtp: int) -> None:
        self.sender_clock = SenderClock(ntp=ntp, rtp=rtp, received_at=time.monotonic())

    def bandwidth_estimate(self) -> int | None:
        """The weakest subscriber's estimate, so the publisher adapts to it (never below
        MIN_BANDWIDTH_ESTIMATE)."""
        estimates = [d.remb_bps for d in self.downtracks if d.remb_bps is not None]
        return max(MIN_BANDWIDTH_ESTIMATE, min(estimates)) if estimates else None
