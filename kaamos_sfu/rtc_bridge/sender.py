"""A sender that writes rewritten RTP straight to the UDP socket: no encoder, no task."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from aiortc import RTCRtpSender
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcrtpparameters import RTCRtpSendParameters
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    AnyRtcpPacket,
    RtcpPsfbPacket,
    RtcpRtpfbPacket,
    RtcpSenderInfo,
    RtcpSrPacket,
    unpack_remb_fci,
)

from ..forwarding import DownTrack, ExtensionIds, UpTrack
from .codecs import Codec, codec_from, extension_ids
from .media_path import MediaPath, media_path
from .receiver import Activity

# Of one NACK, only the newest this many are resent: a longer list is a loss burst that
# retransmissions cannot repair in time, or an attack.
MAX_NACKED_PER_PACKET = 64


@dataclass(frozen=True)
class NegotiatedSend:
    """What a subscriber accepted for one of our sending m-lines."""

    mid: str
    codecs: list[Codec]
    extension_ids: ExtensionIds


class ForwardingSender(RTCRtpSender):
    """Sends one remote track to this subscriber. Starts no task: packets are pushed."""

    def __init__(self, kind: str, transport: RTCDtlsTransport, activity: Activity) -> None:
        super().__init__(kind, transport)
        self.activity = activity
        self.downtrack: DownTrack | None = None
        self.uptrack: UpTrack | None = None
        self.negotiated: NegotiatedSend | None = None
        self.on_negotiated: Callable[[ForwardingSender], None] | None = None
        self._registered = False
        self._path: MediaPath | None = None

    async def send(self, parameters: RTCRtpSendParameters) -> None:
        # Called after every negotiation in which this m-line sends.
        if not self._registered:
            self.transport._register_rtp_sender(self, parameters)
            self._registered = True
        # Bundling may have moved this m-line onto the first m-line's transport.
        self._path = media_path(self.transport)
        self.negotiated = NegotiatedSend(
            mid=parameters.muxId,
            codecs=[codec_from(c) for c in parameters.codecs],
            extension_ids=extension_ids(parameters.headerExtensions),
        )
        if self.on_negotiated is not None:
            self.on_negotiated(self)

    async def stop(self) -> None:
        if self._registered:
            self.transport._unregister_rtp_sender(self)
            self._registered = False

    def send_rtp(self, data: bytes) -> None:
        path = self._path
        if path is not None:
            path.send_rtp(data)

    def handle_rtcp(self, packet: AnyRtcpPacket) -> None:
        """The subscriber's RTCP about what we send it (from media_path)."""
        self.activity.last = time.monotonic()
        downtrack = self.downtrack
        if downtrack is None:
            return
        if isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
            now = time.monotonic()
            for sequence in packet.lost[-MAX_NACKED_PER_PACKET:]:  # the newest
                data = downtrack.retransmission(sequence, now)
                if data is not None:
                    self.send_rtp(data)
        elif isinstance(packet, RtcpPsfbPacket) and packet.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
            downtrack.keyframe_requests += 1
            if self.uptrack is not None:
                self.uptrack.request_keyframe()
        elif isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            try:
                bitrate, ssrcs = unpack_remb_fci(packet.fci)
            except ValueError:
                return
            if self._ssrc in ssrcs:
                # A REMB estimates the whole transport, for all the SSRCs it lists: this
                # stream's fair share is the estimate divided among them.
                downtrack.remb_bps = bitrate // len(ssrcs)

    def reports(self, now: float) -> list[AnyRtcpPacket]:
        """A sender report on the publisher's clock, once the publisher has sent one."""
        downtrack, uptrack = self.downtrack, self.uptrack
        if downtrack is None or uptrack is None:
            return []
        mapping = downtrack.sender_report(uptrack.sender_clock, now)
        if mapping is None:
            return []
        ntp, rtp = mapping
        return [
            RtcpSrPacket(
                ssrc=self._ssrc,
                sender_info=RtcpSenderInfo(
                    ntp_timestamp=ntp,
                    rtp_timestamp=rtp,
                    packet_count=downtrack.packets_sent & 0xFFFFFFFF,
                    octet_count=downtrack.octets_sent & 0xFFFFFFFF,
                ),
            )
        ]

    @property
    def ssrc(self) -> int:
        return self._ssrc
