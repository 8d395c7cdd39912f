"""Cheap aiortc load clients, the same for every system under test.

Publishers send the pre-encoded clip (aiortc only packetizes it) and jump to the next
keyframe when asked, like a camera's encoder. Receivers never depayload or decode: they
count packets, keep aiortc's receive statistics (loss, RTCP receiver reports) and NACK
what is missing. Some video payloads are stamped on send and on arrival (CLOCK_MONOTONIC
is one clock for every process on the host) to measure the latency the SFU adds.

`patch_aiortc()` changes aiortc for the whole process: only load-client processes
(bench/worker.py) call it.
"""

from __future__ import annotations

import socket
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

import aioice.ice
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCRtpTransceiver
from aiortc import rtcrtpreceiver as aiortc_receiver
from aiortc.codecs import is_rtx
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcicetransport import RTCIceGatherer
from aiortc.rtcrtpreceiver import RTCRtpReceiver, StreamStatistics
from aiortc.rtp import (
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RtcpPsfbPacket,
    RtpPacket,
    is_rtcp,
    unwrap_rtx,
)
from media import Clip, LoopedPacketTrack

LOOPBACK = "127.0.0.1"
LATENCY_SAMPLE_MASK = 0x7  # stamp one video payload in 8 (chosen by CRC, same on both ends)
MAX_LATENCY_SAMPLES = 200_000


@dataclass
class TrackStats:
    """What one receiving m-line saw."""

    publisher: str  # the participant whose track this is
    kind: str
    packets: int = 0
    bytes: int = 0
    rtx: int = 0
    nacks: int = 0
    first_at: float | None = None  # monotonic seconds


@dataclass
class LatencyProbe:
    """Send and arrival times (ns) of sampled video payloads, per publisher."""

    sent: dict[tuple[str, int], int] = field(default_factory=dict)
    delays_ns: list[int] = field(default_factory=list)
    recording: bool = False

    def on_send(self, publisher: str, payload: bytes) -> None:
        crc = zlib.crc32(payload)
        if crc & LATENCY_SAMPLE_MASK == 0:
            self.sent[(publisher, crc)] = time.monotonic_ns()

    def on_receive(self, publisher: str, payload: bytes, now_ns: int) -> None:
        crc = zlib.crc32(payload)
        if crc & LATENCY_SAMPLE_MASK or not self.recording:
            return
        sent = self.sent.get((publisher, crc))
        if sent is not None and len(self.delays_ns) < MAX_LATENCY_SAMPLES:
            self.delays_ns.append(now_ns - sent)


PROBE = LatencyProbe()


def rtc_configuration() -> RTCConfiguration:
    # max-bundle: with "balanced", a second video m-line would get a transport of its own
    # that a Janus or relay offer never pairs, and its packets would be lost.
    return RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)


def new_peer_connection() -> RTCPeerConnection:
    return RTCPeerConnection(rtc_configuration())


def enlarge_receive_buffers(pc: RTCPeerConnection) -> None:
    """After gathering: 4 MiB socket buffers, so that a client process that falls behind for
    a moment queues packets instead of losing them (the SFU is what is measured)."""
    for transceiver in pc.getTransceivers():
        for protocol in transceiver.receiver.transport.transport._connection._protocols:
            sock = protocol.transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)


def watch_receiver(receiver: RTCRtpReceiver, publisher: str, kind: str) -> TrackStats:
    """Count what arrives on this receiver as coming from `publisher`."""
    stats = TrackStats(publisher, kind)
    receiver._bench = stats  # type: ignore[attr-defined]
    return stats


def register_video_sender(transceiver: RTCRtpTransceiver, publisher: str) -> None:
    """After negotiation: stamp the payloads this video sender sends, and make its track
    jump to a keyframe when the SFU asks (PLI or FIR), as a camera's encoder would."""
    sender = transceiver.sender
    transport: Any = sender.transport
    publishers: dict[int, str] | None = getattr(transport, "_bench_publishers", None)
    if publishers is None:
        publishers = transport._bench_publishers = {}
        send_rtp = transport._send_rtp

        async def stamped(data: bytes) -> None:
            name = publishers.get(int.from_bytes(data[8:12], "big"))
            if name is not None and not is_rtcp(data):
                PROBE.on_send(name, _payload(data))
            await send_rtp(data)

        transport._send_rtp = stamped
    if sender._ssrc in publishers:
        return
    publishers[sender._ssrc] = publisher
    handle = sender._handle_rtcp_packet

    async def on_rtcp(packet: Any) -> None:
        if isinstance(packet, RtcpPsfbPacket) and packet.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
            track = sender.track
            if isinstance(track, LoopedPacketTrack):
                track.request_keyframe()
        await handle(packet)

    sender._handle_rtcp_packet = on_rtcp  # type: ignore[method-assign]


def _payload(data: bytes) -> bytes:
    offset = 12 + 4 * (data[0] & 0x0F)
    if data[0] & 0x10 and len(data) >= offset + 4:
        offset += 4 + 4 * int.from_bytes(data[offset + 2 : offset + 4], "big")
    end = len(data) - data[-1] if data[0] & 0x20 else len(data)
    return data[offset:end]


def publisher_tracks(video: Clip, audio: Clip) -> dict[str, LoopedPacketTrack]:
    return {"camera": LoopedPacketTrack(video), "microphone": LoopedPacketTrack(audio)}


# aiortc patches: loopback ICE only, and a receiver that counts instead of decoding.


async def _count_rtp(self: Any, packet: RtpPacket, arrival_time_ms: int) -> None:
    if not self._enabled:
        return
    codecs = self._RTCRtpReceiver__codecs
    codec = codecs.get(packet.payload_type)
    if codec is None:
        return
    stats: TrackStats | None = getattr(self, "_bench", None)
    if stats is not None:
        if stats.first_at is None:
            stats.first_at = time.monotonic()
        stats.packets += 1
        stats.bytes += len(packet.payload)
    streams = self._RTCRtpReceiver__remote_streams
    stream = streams.get(packet.ssrc)
    if stream is None:
        stream = streams[packet.ssrc] = StreamStatistics(codec.clockRate)
    stream.add(packet)
    if is_rtx(codec):
        if stats is not None:
            stats.rtx += 1
        original_ssrc = self._RTCRtpReceiver__rtx_ssrc.get(packet.ssrc)
        apt = codec.parameters.get("apt")
        if original_ssrc is None or len(packet.payload) < 2 or apt not in codecs:
            return
        packet = unwrap_rtx(packet, payload_type=apt, ssrc=original_ssrc)
    elif stats is not None and stats.kind == "video":
        PROBE.on_receive(stats.publisher, packet.payload, time.monotonic_ns())
    generator = self._RTCRtpReceiver__nack_generator
    if generator is not None and generator.add(packet):
        if stats is not None:
            stats.nacks += 1
        await self._send_rtcp_nack(packet.ssrc, sorted(generator.missing))


_register_rtp_receiver = RTCDtlsTransport._register_rtp_receiver


def _register_with_rtx(self: RTCDtlsTransport, receiver: Any, parameters: Any) -> None:
    # Several m-lines share the RTX payload type: route RTX by its SSRC, or it is dropped.
    _register_rtp_receiver(self, receiver, parameters)
    for encoding in parameters.encodings:
        if encoding.rtx is not None:
            self._rtp_router.ssrc_table[encoding.rtx.ssrc] = receiver


def _no_decoder(loop: Any, input_q: Any, output_q: Any, *args: Any) -> None:
    while input_q.get() is not None:
        pass


def _loopback_only(use_ipv4: bool = True, use_ipv6: bool = False) -> list[str]:
    return [LOOPBACK]


def patch_aiortc() -> None:
    aioice.ice.get_host_addresses = _loopback_only
    RTCIceGatherer.getDefaultIceServers = classmethod(lambda cls: [])  # type: ignore[method-assign,assignment]
    RTCRtpReceiver._handle_rtp_packet = _count_rtp  # type: ignore[method-assign]
    RTCDtlsTransport._register_rtp_receiver = _register_with_rtx  # type: ignore[method-assign]
    aiortc_receiver.decoder_worker = _no_decoder  # type: ignore[assignment]


def receive_snapshot(receiver: Any) -> dict[str, int]:
    """Packets counted and aiortc's loss statistics (media SSRCs only) for one receiver."""
    stats: TrackStats | None = getattr(receiver, "_bench", None)
    rtx_ssrcs = set(receiver._RTCRtpReceiver__rtx_ssrc)
    streams = [
        s
        for ssrc, s in list(receiver._RTCRtpReceiver__remote_streams.items())
        if ssrc not in rtx_ssrcs
    ]
    return {
        "packets": stats.packets if stats else 0,
        "bytes": stats.bytes if stats else 0,
        "rtx": stats.rtx if stats else 0,
        "nacks": stats.nacks if stats else 0,
        "expected": sum(s.packets_expected for s in streams),
        "lost": sum(max(0, s.packets_lost) for s in streams),
    }
