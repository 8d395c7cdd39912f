"""The aiortc internals the bridge relies on, and proof that the SFU never decodes."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import aioice.ice
from aiortc import RTCPeerConnection
from call_support import clients, create_room

from kaamos_sfu import rtc_bridge
from kaamos_sfu.appkeys import ROOMS
from kaamos_sfu.rtc_bridge import ForwardingReceiver, ForwardingSender
from kaamos_sfu.rtc_bridge.media_path import RECEIVE_BUFFER_BYTES, media_path


async def test_aiortc_internals_are_the_ones_the_bridge_uses():
    """Fails loudly when an aiortc/aioice upgrade moves an internal the bridge touches."""
    pc = RTCPeerConnection()
    try:
        rtc_bridge.check_internals(pc)
    finally:
        await pc.close()


def test_configured_host_addresses_replace_aioice_gathering():
    """configure_ice makes aioice gather exactly the configured addresses, 127.0.0.1 too."""
    try:
        rtc_bridge.configure_ice(["127.0.0.1", "::1"])
        assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False) == ["127.0.0.1"]
        assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True) == ["127.0.0.1", "::1"]
    finally:
        rtc_bridge.configure_ice(["127.0.0.1"])


def test_mdns_candidates_are_stripped():
    """`.local` candidates never reach aioice, which would resolve them by multicast."""
    sdp = (
        "v=0\r\na=candidate:1 1 udp 2122260223 3f2a.local 50000 typ host\r\n"
        "a=candidate:2 1 udp 2122260223 127.0.0.1 50001 typ host\r\n"
    )
    assert rtc_bridge.strip_mdns_candidates(sdp) == (
        "v=0\r\na=candidate:2 1 udp 2122260223 127.0.0.1 50001 typ host\r\n"
    )
    assert rtc_bridge.is_mdns_candidate("candidate:1 1 udp 1 ab.local 5 typ host")
    assert not rtc_bridge.is_mdns_candidate("candidate:1 1 udp 1 127.0.0.1 5 typ host")


async def test_server_side_forwards_without_decoding_or_encoding(make_config, make_client):
    """In a live call, every server transceiver forwards: no decoder thread, no RTP task."""
    http = await make_client(make_config())
    room_id = await create_room(http)
    async with clients(http, room_id, 2) as (a, b):
        await b.wait_decoded((a.peer_id, "camera"), frames=5)
        room = http.server.app[ROOMS].rooms[room_id]
        transceivers = [t for p in room.participants.values() for t in p.pc.getTransceivers()]
        assert len(transceivers) == 8
        for transceiver in transceivers:
            receiver, sender = transceiver.receiver, transceiver.sender
            assert isinstance(receiver, ForwardingReceiver)
            assert isinstance(sender, ForwardingSender)
            assert receiver._RTCRtpReceiver__decoder_thread is None
            assert sender._RTCRtpSender__rtp_task is None
            assert sender._RTCRtpSender__rtcp_task is None
        # The clients decode (2 clients x 2 remote tracks); the server adds no thread.
        decoders = [t for t in threading.enumerate() if t.name.endswith("-decoder")]
        assert len(decoders) == 4


async def test_media_bypasses_aiortc_queues_and_coroutines(make_config, make_client):
    """RTP reaches the forwarding core from the socket callback and leaves with one sendto:
    aiortc's DTLS transport neither receives nor sends it (only RTCP goes that way)."""
    http = await make_client(make_config())
    room_id = await create_room(http)
    async with clients(http, room_id, 2) as (a, b):
        await b.wait_decoded((a.peer_id, "camera"), frames=30)
        room = http.server.app[ROOMS].rooms[room_id]
        for peer in room.participants.values():
            transport = peer.pc.getTransceivers()[0].receiver.transport
            path = media_path(transport)
            assert path.packets_received > 50
            assert path.packets_sent > 50
            queued = transport._RTCDtlsTransport__rx_packets  # what aioice's queue delivered
            sent_by_aiortc = transport._RTCDtlsTransport__tx_packets
            assert queued < path.packets_received / 10
            assert sent_by_aiortc < path.packets_sent / 10
            # Bursts wait in the kernel: the receive buffer is as large as the system allows.
            rmem_max = int(Path("/proc/sys/net/core/rmem_max").read_text())
            for protocol in transport.transport._connection._protocols:
                sock = protocol.transport.get_extra_info("socket")
                wanted = min(RECEIVE_BUFFER_BYTES, rmem_max)
                assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) >= wanted
