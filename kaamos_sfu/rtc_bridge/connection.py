"""Server-side peer connections: ICE host addresses, forwarding transceivers, candidates,
SDP checks and RTCP sending."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Any

import aioice.ice
from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpTransceiver,
)
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtp import AnyRtcpPacket
from aiortc.sdp import SessionDescription, candidate_from_sdp

from .consent import keep_consent
from .host_candidates import HostCandidatePlan, bind_failed, use_host_candidate_plan
from .media_path import TransportCounts, media_path
from .receiver import Activity, ForwardingReceiver
from .sender import ForwardingSender

_original_get_host_addresses = aioice.ice.get_host_addresses
_host_candidate_plan = HostCandidatePlan()


def configure_ice(host_addresses: list[str], plan: HostCandidatePlan | None = None) -> None:
    """Gather host candidates on exactly these addresses (empty: aioice's default), and
    bind and announce the server's candidates as `plan` says (port range, NAT 1:1).

    aioice never gathers 127.0.0.1, so loopback tests need this; a server with several
    interfaces uses it to keep media on the public one. Both settings are process-wide:
    they describe the network of this node.
    """
    global _host_candidate_plan
    _host_candidate_plan = plan or HostCandidatePlan()
    if not host_addresses:
        aioice.ice.get_host_addresses = _original_get_host_addresses
        return
    addresses = list(host_addresses)

    def configured(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in addresses if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    aioice.ice.get_host_addresses = configured


def new_peer_connection(ice_servers: list[dict[str, Any]]) -> RTCPeerConnection:
    """A peer connection with max-bundle, never an implicit public STUN server, and its
    background connect tasks tracked (see `settle`)."""
    servers = [
        RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
        for s in ice_servers
    ]
    pc = RTCPeerConnection(
        RTCConfiguration(iceServers=servers, bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
    )
    track_connect_tasks(pc)
    return pc


_CONNECT_TASKS = "_kaamos_connect_tasks"


def track_connect_tasks(pc: RTCPeerConnection) -> None:
    """Keep the tasks in which aiortc applies each description.

    aiortc starts them as `asyncio.ensure_future(self.__connect())`: the name-mangled
    attribute is looked up on the instance first, so a function set there makes the task
    itself, and `ensure_future` hands that task back unchanged.
    """
    tasks: set[asyncio.Task[None]] = set()
    connect = pc._RTCPeerConnection__connect  # type: ignore[attr-defined]

    def start_connect() -> asyncio.Task[None]:
        task = asyncio.ensure_future(connect())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return task

    pc._RTCPeerConnection__connect = start_connect  # type: ignore[attr-defined]
    setattr(pc, _CONNECT_TASKS, tasks)


def _pending_connects(pc: RTCPeerConnection) -> list[asyncio.Task[None]]:
    tasks: set[asyncio.Task[None]] = getattr(pc, _CONNECT_TASKS, set())
    return [task for task in tasks if not task.done()]


def add_forwarding_transceiver(
    pc: RTCPeerConnection,
    kind: str,
    direction: str,
    activity: Activity,
    on_consent_expired: Callable[[], None],
) -> tuple[RTCRtpTransceiver, ForwardingSender, ForwardingReceiver]:
    """A transceiver whose sender and receiver forward instead of encoding and decoding.

    `on_consent_expired` is called if the client stops answering ICE consent checks."""
    transceiver = pc.addTransceiver(kind, direction=direction)
    transport = transceiver.receiver.transport
    if len(pc.getTransceivers()) == 1:  # max-bundle: the first transport is the only one
        media_path(transport)  # from now on every RTP and RTCP packet is handled there
        connection = transport.transport._connection
        use_host_candidate_plan(connection, _host_candidate_plan)
        keep_consent(connection, on_consent_expired)
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

    connection.request_received = on_request  # type: ignore[method-assign]


async def settle(pc: RTCPeerConnection, timeout: float = 5.0) -> None:
    """Wait until aiortc has finished applying the last description: changing the
    transceivers while its __connect task walks them makes that task fail."""
    pending = _pending_connects(pc)
    if pending:
        await asyncio.wait(pending, timeout=timeout)


async def close_peer_connection(pc: RTCPeerConnection) -> None:
    """Close without leaving tasks behind: aiortc's pending __connect would fail on the
    closed ICE transport, and aioice can start a consent task after its own close()."""
    for task in _pending_connects(pc):
        task.cancel()
    ice_connections = {t.receiver.transport.transport._connection for t in pc.getTransceivers()}
    try:
        await pc.close()
    finally:
        for connection in ice_connections:
            consent = connection._query_consent_task
            if consent is not None:
                consent.cancel()


def media_ports_exhausted(pc: RTCPeerConnection) -> bool:
    """After setLocalDescription: the offer has no candidate because no media socket could
    be bound (not because the connection was closed meanwhile)."""
    transceivers = pc.getTransceivers()
    if not transceivers or "a=candidate:" in pc.localDescription.sdp:
        return False
    return bind_failed(transceivers[0].receiver.transport.transport._connection)


def receive_media_directly(pc: RTCPeerConnection) -> None:
    """Once the candidates are gathered (after the first setLocalDescription): from now on
    SRTP goes from the sockets straight to the media path, never through aiortc's task."""
    transceivers = pc.getTransceivers()
    if transceivers:
        media_path(transceivers[0].receiver.transport).start_receiving()


def transport_counts(pc: RTCPeerConnection) -> TransportCounts:
    """What the (bundled) transport's media path refused so far."""
    transceivers = pc.getTransceivers()
    if not transceivers:
        return TransportCounts()
    return media_path(transceivers[0].receiver.transport).counts


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


def parse_remote_candidate(candidate: str, sdp_mid: str | None, sdp_mline_index: int) -> Any:
    """An RTCIceCandidate for the given m-line from a trickled candidate line; ValueError if
    unparsable."""
    text = candidate.removeprefix("a=")
    text = text.removeprefix("candidate:")
    try:
        parsed = candidate_from_sdp(text)
    except Exception as exc:  # noqa: BLE001 - it asserts, indexes and converts blindly
        raise ValueError(f"unparsable ICE candidate: {exc!r}") from None
    parsed.sdpMid = sdp_mid
    parsed.sdpMLineIndex = sdp_mline_index
    return parsed


def check_answer_matches_offer(pc: RTCPeerConnection, sdp: str) -> dict[str, int]:
    """ValueError unless the answer parses and has exactly our offer's m-lines, in order.

    Returns, for each mid, the payload type the answer lists first (not RTX): the one the
    client will send with. (aiortc keeps the negotiated codecs in *our* preference order.)
    """
    try:
        answer = SessionDescription.parse(sdp)
        # aiortc writes the description out again whenever it is read back (an address
        # like 999.1.1.1 parses, then fails there): refuse what cannot be written.
        str(answer)
    except Exception as exc:  # noqa: BLE001 - the parser raises whatever the bad line triggers
        raise ValueError(f"unparsable SDP: {exc!r}") from None
    offered = [m.rtp.muxId for m in SessionDescription.parse(pc.localDescription.sdp).media]
    answered = [m.rtp.muxId for m in answer.media]
    if offered != answered:
        raise ValueError(f"m-lines {answered} do not match the offer's {offered}")
    for media in answer.media:
        for extension in media.rtp.headerExtensions:
            if not 1 <= extension.id <= 14:
                raise ValueError(f"header extension id {extension.id} is not in 1-14")
    return {
        media.rtp.muxId: codec.payloadType
        for media in answer.media
        for codec in media.rtp.codecs[:1]
        if codec.payloadType is not None
    }


def is_mdns_candidate(candidate: str) -> bool:
    parts = candidate.split()
    return len(parts) > 4 and parts[4].endswith(".local")


def strip_mdns_candidates(sdp: str) -> str:
    """Drop `*.local` candidates: resolving them would send multicast mDNS queries."""
    lines = sdp.split("\r\n")
    return "\r\n".join(
        line for line in lines if not (line.startswith("a=candidate:") and is_mdns_candidate(line))
    )


RTCP_INTERVAL_MAX = 1.5


def jittered_rtcp_interval() -> float:
    """0.5 to 1.5 s, randomized as RFC 3550 asks so that reports do not synchronize."""
    return 0.5 + random.random() * (RTCP_INTERVAL_MAX - 0.5)
