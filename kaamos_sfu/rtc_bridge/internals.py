"""The aiortc/aioice internals this package relies on, checked in one place."""

from __future__ import annotations

import inspect

import aioice.ice
import aioice.turn
import aiortc
import aiortc.rtp
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender
from aiortc.rtcdtlstransport import RTCDtlsTransport, RtpRouter, State

AIORTC_VERSION = "1.16.0"


def check_internals(pc: RTCPeerConnection | None = None) -> None:
    """Raise AssertionError naming the aiortc/aioice internal that changed.

    With a peer connection (created inside an event loop), also check the instance
    attributes the bridge swaps or reads.
    """
    assert aiortc.__version__ == AIORTC_VERSION, f"aiortc {aiortc.__version__} != {AIORTC_VERSION}"
    assert callable(aioice.ice.get_host_addresses), "aioice.ice.get_host_addresses"
    # host_candidates.py replaces this method per connection and builds what it returned.
    gather = inspect.getsource(aioice.ice.Connection.gather_candidates)
    assert "self.get_component_candidates(" in gather, "Connection.gather_candidates"
    assert isinstance(aioice.turn.UDP_SOCKET_BUFFER_SIZE, int), "aioice.turn.UDP_SOCKET_BUFFER_SIZE"
    params = inspect.signature(aioice.ice.Candidate).parameters
    for name in ("foundation", "component", "transport", "priority", "host", "port", "type"):
        assert name in params, f"aioice Candidate({name}=)"
    for name in (
        "_send_rtp",
        "_register_rtp_receiver",
        "_register_rtp_sender",
        "_unregister_rtp_receiver",
        "_unregister_rtp_sender",
        "_handle_rtp_data",
        "_handle_rtcp_data",
    ):
        assert hasattr(RTCDtlsTransport, name), f"RTCDtlsTransport.{name}"
    for name in ("receive", "stop", "_handle_disconnect"):
        assert hasattr(RTCRtpReceiver, name), f"RTCRtpReceiver.{name}"
    for name in ("send", "stop"):
        assert hasattr(RTCRtpSender, name), f"RTCRtpSender.{name}"
    router = RtpRouter()
    for name in ("ssrc_table", "mid_table", "payload_type_table"):  # routing.route_rtp
        assert isinstance(getattr(router, name, None), dict), f"RtpRouter.{name}"
    assert callable(RtpRouter.route_rtcp), "RtpRouter.route_rtcp"
    assert callable(aiortc.rtp.RtcpPacket.parse), "aiortc.rtp.RtcpPacket.parse"
    # consent.py replaces aioice's consent checks and sends its own.
    for name in ("query_consent", "build_request", "request_received"):
        assert callable(getattr(aioice.ice.Connection, name, None)), f"Connection.{name}"
    assert callable(aioice.ice.StunProtocol.request), "aioice StunProtocol.request"
    # media_path: SRTP sessions, state and the ICE pair whose socket it writes to.
    assert hasattr(State, "CONNECTED"), "aiortc.rtcdtlstransport.State.CONNECTED"
    assert callable(aioice.ice.Connection.data_received), "aioice Connection.data_received"
    assert callable(aioice.ice.StunProtocol.datagram_received), "StunProtocol.datagram_received"
    assert "local_candidate" in aioice.ice.StunProtocol.__annotations__, "StunProtocol"
    assert isinstance(aioice.ice.CandidatePair.remote_addr, property), "CandidatePair.remote_addr"
    # connection.new_peer_connection() replaces it per instance to keep its tasks.
    assert hasattr(RTCPeerConnection, "_RTCPeerConnection__connect"), "RTCPeerConnection.__connect"
    if pc is not None:
        transceiver = pc.addTransceiver("video", direction="sendonly")
        for name in ("_RTCRtpTransceiver__sender", "_RTCRtpTransceiver__receiver", "_codecs"):
            assert hasattr(transceiver, name), f"RTCRtpTransceiver.{name}"
        sender = transceiver.sender
        for name in ("_ssrc", "_rtx_ssrc", "_stream_id", "_track_id"):
            assert hasattr(sender, name), f"RTCRtpSender.{name}"
        connection = sender.transport.transport._connection
        assert callable(connection.request_received), "aioice Connection.request_received"
        assert hasattr(connection, "_query_consent_task"), "aioice Connection._query_consent_task"
        assert isinstance(connection._protocols, list), "aioice Connection._protocols"
        assert isinstance(sender.transport._rtp_router, RtpRouter), "RTCDtlsTransport._rtp_router"
        dtls = sender.transport
        for name in ("_state", "_rx_srtp", "_tx_srtp"):
            assert hasattr(dtls, name), f"RTCDtlsTransport.{name}"
        assert isinstance(connection._nominated, dict), "aioice Connection._nominated"
        assert isinstance(connection._protocols, list), "aioice Connection._protocols"
