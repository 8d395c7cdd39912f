"""Every use of aiortc/aioice internals lives here, and nowhere else.

aiortc gives us ICE, DTLS, SRTP and SDP, but its RTCRtpReceiver decodes everything (a
decoder thread per track) and its RTCRtpSender encodes (and polls every 20 ms while idle).
An SFU needs neither: we replace each transceiver's receiver and sender by subclasses that
tap RTP right after SRTP, before the jitter buffer, and write RTP straight to the DTLS
transport. The internals used are pinned by the exact aiortc version in pyproject.toml and
checked by `check_internals()`, which tests/test_rtc_bridge.py runs so that an upgrade
fails loudly instead of silently decoding again.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aioice.ice
import aiortc
from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCRtpTransceiver,
)
from aiortc.codecs import CODECS
from aiortc.rtcdtlstransport import RTCDtlsTransport, RtpRouter
from aiortc.rtcrtpparameters import (
    RTCRtpCodecCapability,
    RTCRtpCodecParameters,
    RTCRtpHeaderExtensionParameters,
    RTCRtpReceiveParameters,
    RTCRtpSendParameters,
)
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    AnyRtcpPacket,
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSenderInfo,
    RtcpSrPacket,
    RtpPacket,
    pack_remb_fci,
    unpack_remb_fci,
    unwrap_rtx,
)
from aiortc.sdp import SessionDescription, candidate_from_sdp

from .forwarding import DownTrack, ExtensionIds, UpTrack

AIORTC_VERSION = "1.16.0"
URI_MID = "urn:ietf:params:rtp-hdrext:sdes:mid"
URI_ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
URI_AUDIO_LEVEL = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"

_original_get_host_addresses = aioice.ice.get_host_addresses


def configure_ice(host_addresses: list[str]) -> None:
    """Gather host candidates on exactly these addresses (empty: aioice's default).

    aioice never gathers 127.0.0.1, so loopback tests need this; a server with several
    interfaces uses it to keep media on the public one.
    """
    if not host_addresses:
        aioice.ice.get_host_addresses = _original_get_host_addresses
        return
    addresses = list(host_addresses)

    def configured(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in addresses if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    aioice.ice.get_host_addresses = configured


def new_peer_connection(ice_servers: list[dict[str, Any]]) -> RTCPeerConnection:
    """A server-side peer connection: max-bundle, and never an implicit public STUN server."""
    servers = [
        RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
        for s in ice_servers
    ]
    return RTCPeerConnection(RTCConfiguration(iceServers=servers, bundlePolicy="max-bundle"))


# Codecs


@dataclass(frozen=True)
class Codec:
    """A negotiated codec, without aiortc types."""

    mime_type: str
    clock_rate: int
    channels: int | None
    payload_type: int
    parameters: tuple[tuple[str, str], ...] = ()

    @property
    def name(self) -> str:
        return self.mime_type.split("/")[1].upper()

    @property
    def is_rtx(self) -> bool:
        return self.name == "RTX"

    def key(self) -> tuple[Any, ...]:
        """What must match for two payload types to carry the same bitstream format."""
        params = dict(self.parameters)
        if self.name == "H264":
            return (
                "H264",
                params.get("packetization-mode", "0"),
                params.get("profile-level-id", "42e01f").lower(),
            )
        return (self.name, self.clock_rate)


def _codec(parameters: RTCRtpCodecParameters) -> Codec:
    return Codec(
        mime_type=parameters.mimeType,
        clock_rate=parameters.clockRate,
        channels=parameters.channels,
        payload_type=parameters.payloadType,
        parameters=tuple(sorted((k, str(v)) for k, v in parameters.parameters.items())),
    )


def _capability(codec: RTCRtpCodecParameters) -> RTCRtpCodecCapability:
    return RTCRtpCodecCapability(
        mimeType=codec.mimeType,
        clockRate=codec.clockRate,
        channels=codec.channels,
        parameters=codec.parameters,
    )


def _rtx_capability() -> RTCRtpCodecCapability:
    return RTCRtpCodecCapability(mimeType="video/rtx", clockRate=90000)


def publisher_codec_preferences(kind: str, video_codecs: list[str]) -> list[RTCRtpCodecCapability]:
    """What we offer a publisher: Opus for audio; the configured video codecs, in order."""
    if kind == "audio":
        return [_capability(c) for c in CODECS["audio"] if c.mimeType.lower() == "audio/opus"]
    preferences = []
    for name in video_codecs:
        for codec in CODECS["video"]:
            if codec.mimeType.upper() == f"VIDEO/{name}" and (
                name != "H264" or codec.parameters.get("packetization-mode") == "1"
            ):
                preferences.append(_capability(codec))
    return preferences + [_rtx_capability()]


def subscriber_codec_preferences(codec: Codec) -> list[RTCRtpCodecCapability]:
    """What we offer a subscriber for a remote track: exactly the publisher's codec."""
    for candidate in CODECS[codec.mime_type.split("/")[0].lower()]:
        if _codec(candidate).key() == codec.key():
            preferences = [_capability(candidate)]
            if codec.mime_type.lower().startswith("video/"):
                preferences.append(_rtx_capability())
            return preferences
    raise ValueError(f"no local codec matches {codec}")


def negotiated_codecs(transceiver: RTCRtpTransceiver) -> list[Codec]:
    """The codecs of the last completed negotiation, the answerer's preferred first."""
    return [_codec(c) for c in transceiver._codecs]


def _extension_ids(extensions: list[RTCRtpHeaderExtensionParameters]) -> ExtensionIds:
    ids = {x.uri: x.id for x in extensions}
    return ExtensionIds(
        mid=ids.get(URI_MID, 0),
        abs_send_time=ids.get(URI_ABS_SEND_TIME, 0),
        audio_level=ids.get(URI_AUDIO_LEVEL, 0),
    )


# Receiving: tap RTP before the jitter buffer


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
        self._rtx_ssrcs: dict[int, int] = {}  # RTX SSRC -> media SSRC

    async def receive(self, parameters: RTCRtpReceiveParameters) -> None:
        # Called after every negotiation: refresh the tables, start no thread or task.
        self._rtx_payload_types = {
            c.payloadType: int(c.parameters["apt"])
            for c in parameters.codecs
            if c.mimeType.lower() == "video/rtx" and "apt" in c.parameters
        }
        self._rtx_ssrcs = {e.rtx.ssrc: e.ssrc for e in parameters.encodings if e.rtx}
        self.transport._register_rtp_receiver(self, parameters)
        # Several video m-lines share the RTX payload type, so aiortc's router cannot
        # route RTX by payload type alone: map the RTX SSRCs explicitly.
        router: RtpRouter = self.transport._rtp_router
        for rtx_ssrc in self._rtx_ssrcs:
            router.ssrc_table[rtx_ssrc] = self

    async def stop(self) -> None:
        self.transport._unregister_rtp_receiver(self)

    def _handle_disconnect(self) -> None:
        pass

    async def _handle_rtcp_packet(self, packet: AnyRtcpPacket) -> None:
        self.activity.last = time.monotonic()
        if isinstance(packet, RtcpSrPacket) and self.uptrack is not None:
            info = packet.sender_info
            self.uptrack.on_sender_report(info.ntp_timestamp, info.rtp_timestamp)

    async def _handle_rtp_packet(self, packet: RtpPacket, arrival_time_ms: int) -> None:
        uptrack = self.uptrack
        if uptrack is None:
            return
        self.activity.last = time.monotonic()
        media_payload_type = self._rtx_payload_types.get(packet.payload_type)
        if media_payload_type is not None:
            if len(packet.payload) < 2 or uptrack.media_ssrc is None:
                return  # RTX padding (bandwidth probe)
            media_ssrc = self._rtx_ssrcs.get(packet.ssrc, uptrack.media_ssrc)
            packet = unwrap_rtx(packet, payload_type=media_payload_type, ssrc=media_ssrc)
            uptrack.stats.missing.discard(packet.sequence_number)
        else:
            if uptrack.media_ssrc != packet.ssrc:
                uptrack.media_ssrc = packet.ssrc
            missed = uptrack.stats.add(
                packet.sequence_number, packet.timestamp, arrival_time_ms / 1000
            )
            if missed and uptrack.kind == "video":
                await self._send_rtcp(
                    RtcpRtpfbPacket(
                        fmt=RTCP_RTPFB_NACK,
                        ssrc=self.rtcp_ssrc,
                        media_ssrc=packet.ssrc,
                        lost=sorted(uptrack.stats.missing),
                    )
                )
        await uptrack.forward(packet)

    async def request_keyframe(self, media_ssrc: int) -> None:
        await self._send_rtcp(
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

    async def _send_rtcp(self, packet: AnyRtcpPacket) -> None:
        try:
            await self.transport._send_rtp(bytes(packet))
        except ConnectionError:
            pass


# Sending: write rewritten RTP straight to the DTLS transport


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

    async def send(self, parameters: RTCRtpSendParameters) -> None:
        # Called after every negotiation in which this m-line sends.
        if not self._registered:
            self.transport._register_rtp_sender(self, parameters)
            self._registered = True
        self.negotiated = NegotiatedSend(
            mid=parameters.muxId,
            codecs=[_codec(c) for c in parameters.codecs],
            extension_ids=_extension_ids(parameters.headerExtensions),
        )
        if self.on_negotiated is not None:
            self.on_negotiated(self)

    async def stop(self) -> None:
        if self._registered:
            self.transport._unregister_rtp_sender(self)
            self._registered = False

    async def send_rtp(self, data: bytes) -> None:
        try:
            await self.transport._send_rtp(data)
        except ConnectionError:
            pass  # the subscriber's transport closed; its peer is being removed

    async def _handle_rtcp_packet(self, packet: AnyRtcpPacket) -> None:
        self.activity.last = time.monotonic()
        downtrack = self.downtrack
        if downtrack is None:
            return
        if isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
            for sequence in packet.lost:
                data = downtrack.retransmission(sequence)
                if data is not None:
                    await self.send_rtp(data)
        elif isinstance(packet, RtcpPsfbPacket) and packet.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
            if self.uptrack is not None:
                await self.uptrack.request_keyframe()
        elif isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            try:
                bitrate, ssrcs = unpack_remb_fci(packet.fci)
            except ValueError:
                return
            if self._ssrc in ssrcs:
                downtrack.remb_bps = bitrate

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


def add_forwarding_transceiver(
    pc: RTCPeerConnection,
    kind: str,
    direction: str,
    activity: Activity,
) -> tuple[RTCRtpTransceiver, ForwardingSender, ForwardingReceiver]:
    """A transceiver whose sender and receiver forward instead of encoding and decoding."""
    transceiver = pc.addTransceiver(kind, direction=direction)
    transport = transceiver.receiver.transport
    if len(pc.getTransceivers()) == 1:
        _watch_consent_checks(transport, activity)
    sender = ForwardingSender(kind, transport, activity)
    receiver = ForwardingReceiver(kind, transport, activity)
    receiver.rtcp_ssrc = sender.ssrc
    transceiver._RTCRtpTransceiver__sender = sender  # type: ignore[attr-defined]
    transceiver._RTCRtpTransceiver__receiver = receiver  # type: ignore[attr-defined]
    return transceiver, sender, receiver


def _watch_consent_checks(transport: RTCDtlsTransport, activity: Activity) -> None:
    """Count the client's STUN requests (ICE consent checks, every ~5 s) as signs of life,
    so a peer that sends no media at all (camera and microphone off) is not taken for gone."""
    connection = transport.transport._connection
    request_received = connection.request_received

    def on_request(*args: Any, **kwargs: Any) -> None:
        activity.last = time.monotonic()
        request_received(*args, **kwargs)

    connection.request_received = on_request


def set_stream(sender: ForwardingSender, stream_id: str, track_id: str) -> None:
    """The a=msid our offer carries for this m-line: audio and video of a peer share it."""
    sender._stream_id = stream_id
    sender._track_id = track_id


async def send_rtcp(pc: RTCPeerConnection, packets: list[AnyRtcpPacket]) -> None:
    """Send RTCP packets as one compound packet over the (bundled) transport."""
    transceivers = pc.getTransceivers()
    if not packets or not transceivers:
        return
    transport: RTCDtlsTransport = transceivers[0].receiver.transport
    if transport.state != "connected":
        return
    try:
        await transport._send_rtp(b"".join(bytes(p) for p in packets))
    except ConnectionError:
        pass


def parse_remote_candidate(candidate: str, sdp_mid: str | None, sdp_mline_index: int | None) -> Any:
    """An RTCIceCandidate from a trickled candidate line; ValueError if unparsable."""
    text = candidate[2:] if candidate.startswith("a=") else candidate
    if text.startswith("candidate:"):
        text = text[len("candidate:") :]
    try:
        parsed = candidate_from_sdp(text)
    except (ValueError, IndexError) as exc:
        raise ValueError(f"unparsable ICE candidate: {exc}") from None
    parsed.sdpMid = sdp_mid
    parsed.sdpMLineIndex = sdp_mline_index
    return parsed


def check_answer_matches_offer(pc: RTCPeerConnection, sdp: str) -> None:
    """ValueError unless the answer parses and has exactly our offer's m-lines, in order."""
    try:
        answer = SessionDescription.parse(sdp)
    except Exception as exc:  # the parser raises whatever the bad line triggers
        raise ValueError(f"unparsable SDP: {exc!r}") from None
    offered = [m.rtp.muxId for m in SessionDescription.parse(pc.localDescription.sdp).media]
    answered = [m.rtp.muxId for m in answer.media]
    if offered != answered:
        raise ValueError(f"m-lines {answered} do not match the offer's {offered}")


def is_mdns_candidate(candidate: str) -> bool:
    parts = candidate.split()
    return len(parts) > 4 and parts[4].endswith(".local")


def strip_mdns_candidates(sdp: str) -> str:
    """Drop `*.local` candidates: resolving them would send multicast mDNS queries."""
    lines = sdp.split("\r\n")
    return "\r\n".join(
        line for line in lines if not (line.startswith("a=candidate:") and is_mdns_candidate(line))
    )


def jittered_rtcp_interval() -> float:
    return 0.5 + random.random()


def check_internals(pc: RTCPeerConnection | None = None) -> None:
    """Raise AssertionError naming the aiortc/aioice internal that changed.

    With a peer connection (created inside an event loop), also check the instance
    attributes the bridge swaps or reads.
    """
    assert aiortc.__version__ == AIORTC_VERSION, f"aiortc {aiortc.__version__} != {AIORTC_VERSION}"
    assert callable(aioice.ice.get_host_addresses), "aioice.ice.get_host_addresses"
    for name in ("_send_rtp", "_register_rtp_receiver", "_register_rtp_sender",
                 "_unregister_rtp_receiver", "_unregister_rtp_sender", "_handle_rtp_data"):
        assert hasattr(RTCDtlsTransport, name), f"RTCDtlsTransport.{name}"
    for name in ("receive", "stop", "_handle_rtp_packet", "_handle_rtcp_packet",
                 "_handle_disconnect"):
        assert hasattr(RTCRtpReceiver, name), f"RTCRtpReceiver.{name}"
    for name in ("send", "stop", "_handle_rtcp_packet"):
        assert hasattr(RTCRtpSender, name), f"RTCRtpSender.{name}"
    assert isinstance(RtpRouter().ssrc_table, dict), "RtpRouter.ssrc_table"
    if pc is not None:
        transceiver = pc.addTransceiver("video", direction="sendonly")
        for name in ("_RTCRtpTransceiver__sender", "_RTCRtpTransceiver__receiver", "_codecs"):
            assert hasattr(transceiver, name), f"RTCRtpTransceiver.{name}"
        sender = transceiver.sender
        for name in ("_ssrc", "_rtx_ssrc", "_stream_id", "_track_id"):
            assert hasattr(sender, name), f"RTCRtpSender.{name}"
        connection = sender.transport.transport._connection
        assert callable(connection.request_received), "aioice Connection.request_received"
        assert isinstance(sender.transport._rtp_router, RtpRouter), "RTCDtlsTransport._rtp_router"
