"""SRTP straight between the nominated ICE pair's UDP socket and the forwarding core.

aiortc's path costs far more than its unavoidable parts (SRTP, one recv, one send): an
incoming packet goes through aioice's queue, a task wake-up, a full `RtpPacket.parse` and
several coroutines; an outgoing one through five nested coroutines down to
`transport.sendto`. Here an SRTP packet is unprotected in the socket's datagram callback,
parsed into an `RtpHeader` and handed, synchronously, to its receiver; incoming RTCP is
unprotected, parsed and handed to its senders and receivers the same way (at most
MAX_RTCP_PER_SECOND, and a packet aiortc cannot parse is counted and dropped: in aiortc's
own path one could end the transport's task); outgoing RTP and RTCP are protected and
written with one `sendto`. DTLS and STUN still take aiortc's path (they are rare).
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import pylibsrtp
from aiortc.rtcdtlstransport import RTCDtlsTransport, State
from aiortc.rtp import AnyRtcpPacket, RtcpPacket

from ..forwarding.rtp_header import RtpHeader
from .routing import route_rtp

log = logging.getLogger(__name__)

RTP_COMPONENT = 1
# A burst (keyframes of several publishers at once, or a moment without CPU) must wait in
# the kernel, not be dropped: Linux's default of 208 KiB holds fewer than 100 packets.
RECEIVE_BUFFER_BYTES = 4 << 20
# Compound RTCP packets taken from one client per second (a bucket this deep, refilled at
# this rate): a browser sends a few reports a second, and NACKs and PLIs on loss.
MAX_RTCP_PER_SECOND = 300.0


class RtpHandler(Protocol):
    """A receiver the media path delivers parsed RTP to."""

    def handle_rtp(self, packet: RtpHeader, now: float) -> None: ...


class RtcpHandler(Protocol):
    """A sender or receiver the media path delivers parsed RTCP to."""

    def handle_rtcp(self, packet: AnyRtcpPacket) -> None: ...


@dataclass
class TransportCounts:
    """What the media path refused, by why (read by /metrics)."""

    rtcp_malformed: int = 0  # unparsable, or its recipient could not take it
    rtcp_over_limit: int = 0  # above MAX_RTCP_PER_SECOND
    srtp_send_failures: int = 0  # RTP or RTCP that SRTP refused to protect


class MediaPath:
    """Fast RTP/RTCP I/O for one (bundled) DTLS transport."""

    def __init__(self, dtls: RTCDtlsTransport) -> None:
        self.dtls = dtls
        self.connection = dtls.transport._connection
        self.packets_received = 0  # RTP handled here, not by aiortc's receive queue
        self.packets_sent = 0
        self.counts = TransportCounts()
        self.mid_extension_id = 0  # sdes:mid as the client negotiated it (0: not at all)
        self._rtcp_tokens = MAX_RTCP_PER_SECOND
        self._rtcp_refilled_at = 0.0
        self._pair: Any = None
        self._sendto: Callable[[bytes, Any], None] | None = None
        self._address: tuple[str, int] | None = None
        self._receiving = False
        # What reaches aiortc's own receive path (before start_receiving, or while DTLS is
        # not connected) is handled here too.
        dtls._handle_rtp_data = self._handle_queued  # type: ignore[method-assign]
        dtls._handle_rtcp_data = self._handle_queued_rtcp  # type: ignore[method-assign]

    # Sending

    def send_rtp(self, data: bytes) -> None:
        """Protect and send one RTP packet; dropped silently if not connected (yet)."""
        if self.dtls._state is not State.CONNECTED or not self._route():
            return
        assert self._sendto is not None
        try:
            protected = self.dtls._tx_srtp.protect(data)
        except (pylibsrtp.Error, ValueError):  # ValueError: longer than libsrtp's buffer
            # Never expected: the forwarding core keeps every stream continuous.
            self.counts.srtp_send_failures += 1
            return
        self._sendto(protected, self._address)
        self.packets_sent += 1

    def send_rtcp(self, data: bytes) -> None:
        if self.dtls._state is not State.CONNECTED or not self._route():
            return
        assert self._sendto is not None
        try:
            protected = self.dtls._tx_srtp.protect_rtcp(data)
        except (pylibsrtp.Error, ValueError):
            self.counts.srtp_send_failures += 1
            return
        self._sendto(protected, self._address)

    def _route(self) -> bool:
        """Follow the nominated pair: ICE may nominate another one during the call."""
        pair = self.connection._nominated.get(RTP_COMPONENT)
        if pair is None:
            return False
        if pair is not self._pair:
            self._pair = pair
            self._address = pair.remote_addr
            self._sendto = pair.protocol.transport.sendto
        return True

    # Receiving

    def start_receiving(self) -> None:
        """Take SRTP out of aioice's path from now on (idempotent; call it once the host
        candidates are gathered, before DTLS can connect): each local socket's datagram
        callback hands RTP and RTCP here before aioice tries to parse them as STUN. Until
        DTLS is connected they still go to aioice's queue, and aiortc's own unprotect (a
        datagram too long for libsrtp would end its task there: none can come yet)."""
        if self._receiving:
            return
        self._receiving = True
        protocols: list[Any] = self.connection._protocols  # gathered before any offer
        for protocol in protocols:
            protocol.datagram_received = self._receiver_for(protocol)
            sock = protocol.transport.get_extra_info("socket")
            if sock is not None:  # capped by net.core.rmem_max
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)

    def _receiver_for(self, protocol: Any) -> Callable[[bytes, Any], None]:
        stun_received = protocol.datagram_received
        component = protocol.local_candidate.component

        def datagram_received(data: bytes, address: Any) -> None:
            # RTP and RTCP start with version 2 (0b10...); STUN with 0b00 and DTLS with 20-63.
            if len(data) >= 12 and 127 < data[0] < 192:
                self._datagram(data, component)
            else:
                stun_received(data, address)

        return datagram_received

    def _datagram(self, data: bytes, component: int) -> None:
        srtp = self.dtls._rx_srtp
        if srtp is None or self.dtls._state is not State.CONNECTED:
            self.connection.data_received(data, component)  # aioice's queue, as before
            return
        try:
            if 192 <= data[1] <= 208:  # RTCP
                if self._rtcp_allowed():
                    self._deliver_rtcp(srtp.unprotect_rtcp(data))
            else:
                self._deliver(srtp.unprotect(data))
        except (pylibsrtp.Error, ValueError):
            return  # replayed, forged, or too long for libsrtp's buffer (ValueError)

    async def _handle_queued(self, data: bytes, arrival_time_ms: int) -> None:
        self._deliver(data)

    async def _handle_queued_rtcp(self, data: bytes) -> None:
        if self._rtcp_allowed():
            self._deliver_rtcp(data)

    def _rtcp_allowed(self) -> bool:
        now = time.monotonic()
        tokens = self._rtcp_tokens + (now - self._rtcp_refilled_at) * MAX_RTCP_PER_SECOND
        self._rtcp_tokens = min(MAX_RTCP_PER_SECOND, tokens)
        self._rtcp_refilled_at = now
        if self._rtcp_tokens < 1.0:
            self.counts.rtcp_over_limit += 1
            return False
        self._rtcp_tokens -= 1.0
        return True

    def _deliver_rtcp(self, data: bytes) -> None:
        """Parse a compound RTCP packet and hand each part to its recipients. Nothing a
        client sends may raise from here: it would close the socket, or end a task."""
        try:
            packets = RtcpPacket.parse(data)
        except Exception:  # noqa: BLE001 - aiortc's parser raises what the bytes trigger
            self.counts.rtcp_malformed += 1
            return
        for packet in packets:
            try:
                recipients = self.dtls._rtp_router.route_rtcp(packet)
                for recipient in recipients:
                    handler: RtcpHandler = recipient  # type: ignore[assignment]
                    handler.handle_rtcp(packet)
            except Exception:  # noqa: BLE001 - e.g. a REMB that claims more SSRCs than it has
                self.counts.rtcp_malformed += 1

    def _deliver(self, data: bytes) -> None:
        try:
            packet = RtpHeader.parse(data)
        except ValueError:
            return
        self.packets_received += 1
        # Every receiver on a server transport is a ForwardingReceiver.
        receiver: RtpHandler | None = route_rtp(
            self.dtls._rtp_router, packet, self.mid_extension_id
        )
        if receiver is None:
            return
        try:
            receiver.handle_rtp(packet, time.monotonic())
        except Exception:
            # An exception escaping datagram_received would close the socket for everyone.
            log.exception("RTP handling failed")


def media_path(dtls: RTCDtlsTransport) -> MediaPath:
    """The one MediaPath of this DTLS transport, kept on the transport itself: it lives and
    dies with it (a table keyed by the transport would keep every transport alive, since
    the path holds its transport)."""
    path: MediaPath | None = getattr(dtls, _ATTRIBUTE, None)
    if path is None:
        path = MediaPath(dtls)
        setattr(dtls, _ATTRIBUTE, path)
    return path


_ATTRIBUTE = "_kaamos_media_path"
