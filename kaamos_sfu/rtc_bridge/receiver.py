"""A receiver that taps RTP right after SRTP, before aiortc's jitter buffer and decoder."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from aiortc import RTCRtpReceiver
from aiortc.rtcdtlstransport import RTCDtlsTransport, RtpRouter
from aiortc.rtcrtpparameters import RTCRtpReceiveParameters
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    AnyRtcpPacket,
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSrPacket,
    pack_remb_fci,
)

from ..forwarding import UpTrack
from ..forwarding.rtp_header import RtpHeader
from .codecs import URI_AUDIO_LEVEL, URI_MID
from .media_path import media_path


@dataclass
class Activity:
    """When a peer was last heard on its media transport (RTP or RTCP), monotonic seconds."""

    last: float = field(default_factory=time.monotonic)


class ForwardingReceiver(RTCRtpReceiver):
    """Receives one published source and hands its packets to an UpTrack. Never decodes."""

    def __init__(self, kind: str, transport: RTCDtlsTransport, activity: Activity) -> None:
        super().__init__(kind, transport)
        self.activity = activity
        self.uptrack: UpTrack | None = None
        self.rtcp_ssrc = 0
        self._rtx_payload_types: dict[int, int] = {}  # RTX payload type -> media payload type
        self._audio_level_id = 0

    async def receive(self, parameters: RTCRtpReceiveParameters) -> None:
        # Called after every negotiation: refresh the tables, start no thread or task.
        self._rtx_payload_types = {
            int(c.payloadType or 0): int(str(c.parameters["apt"]))
            for c in parameters.codecs
            if c.mimeType.lower() == "video/rtx" and "apt" in c.parameters
        }
        extensions = {x.uri: x.id for x in parameters.headerExtensions}
        self._audio_level_id = extensions.get(URI_AUDIO_LEVEL, 0)
        self.transport._register_rtp_receiver(self, parameters)
        media_path(self.transport).mid_extension_id = extensions.get(URI_MID, 0)
        # Several video m-lines share the RTX payload type, so aiortc's router cannot
        # route RTX by payload type alone: map the RTX SSRCs explicitly.
        router: RtpRouter = self.transport._rtp_router
        for encoding in parameters.encodings:
            if encoding.rtx:
                router.ssrc_table[encoding.rtx.ssrc] = self

    async def stop(self) -> None:
        self.transport._unregister_rtp_receiver(self)

    def _handle_disconnect(self) -> None:
        pass

    def handle_rtcp(self, packet: AnyRtcpPacket) -> None:
        """RTCP about the stream we receive (a sender report), from media_path."""
        self.activity.last = time.monotonic()
        if isinstance(packet, RtcpSrPacket) and self.uptrack is not None:
            info = packet.sender_info
            self.uptrack.on_sender_report(info.ntp_timestamp, info.rtp_timestamp)

    def handle_rtp(self, packet: RtpHeader, now: float) -> None:
        """One RTP packet from the publisher, right after SRTP (see media_path)."""
        uptrack = self.uptrack
        if uptrack is None:
            return
        self.activity.last = now
        if self._audio_level_id:
            packet.read_audio_level(self._audio_level_id)
        media_payload_type = self._rtx_payload_types.get(packet.payload_type)
        if media_payload_type is not None:
            uptrack.receive_rtx(packet, media_payload_type)
            return
        lost = uptrack.receive(packet, now)
        if lost:
            self._send_feedback(
                RtcpRtpfbPacket(
                    fmt=RTCP_RTPFB_NACK, ssrc=self.rtcp_ssrc, media_ssrc=packet.ssrc, lost=list(lost)
                )
            )

    def request_keyframe(self, media_ssrc: int) -> None:
        self._send_feedback(
            RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=self.rtcp_ssrc, media_ssrc=media_ssrc)
        )

    def reports(self) -> list[AnyRtcpPacket]:
        """A receiver report (and REMB for video) about the stream we receive."""
        uptrack = self.uptrack
        if uptrack is None or uptrack.media_ssrc is None:
            return []
        stats = uptrack.stats
        lsr = dlsr = 0
        if uptrack.sender_clock is not None:
            lsr = (uptrack.sender_clock.ntp >> 16) & 0xFFFFFFFF
            dlsr = int((time.monotonic() - uptrack.sender_clock.received_at) * 65536)
        packets: list[AnyRtcpPacket] = [
            RtcpRrPacket(
                ssrc=self.rtcp_ssrc,
                reports=[
                    RtcpReceiverInfo(
                        ssrc=uptrack.media_ssrc,
                        fraction_lost=stats.fraction_lost(),
                        packets_lost=stats.packets_lost,
                        highest_sequence=stats.highest_sequence & 0xFFFFFFFF,
                        jitter=stats.jitter,
                        lsr=lsr,
                        dlsr=min(dlsr, 0xFFFFFFFF),
                    )
                ],
            )
        ]
        estimate = uptrack.bandwidth_estimate()
        if estimate is not None:
            packets.append(
                RtcpPsfbPacket(
                    fmt=RTCP_PSFB_APP,
                    ssrc=self.rtcp_ssrc,
                    media_ssrc=0,
                    fci=pack_remb_fci(estimate, [uptrack.media_ssrc]),
                )
            )
        return packets

    def _send_feedback(self, packet: AnyRtcpPacket) -> None:
        media_path(self.transport).send_rtcp(bytes(packet))
