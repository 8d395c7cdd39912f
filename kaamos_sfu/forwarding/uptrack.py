"""One published source as it arrives at the SFU, and the subscribers it fans out to."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from .downtrack import DownTrack, RtpPacketLike, SenderClock
from .keyframe import starts_keyframe
from .receive_stats import ReceiveStats

log = logging.getLogger(__name__)

KEYFRAME_REQUEST_INTERVAL = 0.5  # at most one PLI upstream per track per 500 ms
ABS_SEND_TIME_MASK = 0xFFFFFF


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
        self.nacks_sent = 0  # NACKs sent upstream, counted by the bridge's receiver

    def attach(self, downtrack: DownTrack) -> None:
        self.downtracks = self.downtracks + (downtrack,)

    def detach(self, downtrack: DownTrack) -> None:
        self.downtracks = tuple(d for d in self.downtracks if d is not downtrack)

    def forward(self, packet: RtpPacketLike) -> None:
        """Hand one packet (already unwrapped from RTX) to every subscriber."""
        self.packets_received += 1
        if not packet.payload:
            return  # padding only: bandwidth probing between publisher and us
        if self._keyframe_pending and starts_keyframe(self.codec_name, packet.payload):
            self._keyframe_pending = False
        send_time = abs_send_time(time.time())
        waiting = False
        for downtrack in self.downtracks:
            try:
                data = downtrack.rewrite(packet, send_time)
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
        """The weakest subscriber's estimate, so the publisher adapts to it."""
        estimates = [d.remb_bps for d in self.downtracks if d.remb_bps is not None]
        return min(estimates) if estimates else None
