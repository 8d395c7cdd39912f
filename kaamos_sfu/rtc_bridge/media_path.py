"""SRTP straight between the nominated ICE pair's UDP socket and the forwarding core.

aiortc's path costs far more than its unavoidable parts (SRTP, one recv, one send): an
incoming packet goes through aioice's queue, a task wake-up, a full `RtpPacket.parse` and
several coroutines; an outgoing one through five nested coroutines down to
`transport.sendto`. Here an SRTP packet is unprotected in the socket's datagram callback,
parsed into an `RtpHeader` and handed, synchronously, to its receiver; outgoing RTP and
RTCP are protected and written with one `sendto`. DTLS, STUN and incoming RTCP still take
aiortc's path (they are rare).
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from typing import Any, Protocol

import pylibsrtp
from aiortc.rtcdtlstransport import RTCDtlsTransport, State

from ..forwarding.rtp_header import RtpHeader

log = logging.getLogger(__name__)

RTP_COMPONENT = 1
# A burst (keyframes of several publishers at once, or a moment without CPU) must wait in
# the kernel, not be dropped: Linux's default of 208 KiB holds fewer than 100 packets.
RECEIVE_BUFFER_BYTES = 4 << 20


class RtpHandler(Protocol):
    """A receiver the media path delivers parsed RTP to."""

    def handle_rtp(self, packet: RtpHeader, now: float) -> None: ...


class MediaPath:
    """Fast RTP/RTCP I/O for one (bundled) DTLS transport."""

    def __init__(self, dtls: RTCDtlsTransport) -> None:
        self.dtls = dtls
        self.connection = dtls.transport._connection
        self.packets_received = 0  # RTP handled here, not by aiortc's receive queue
        self.packets_sent = 0
        self._pair: Any = None
        self._sendto: Callable[[bytes, Any], None] | None = None
        self._address: tuple[str, int] | None = None
        self._receiving = False

    # Sending

    def send_rtp(self, data: bytes) -> None:
        """Protect and send one RTP packet; dropped silently if not connected (yet)."""
        if self.dtls._state is not State.CONNECTED or not self._route():
            return
        assert self._sendto is not None
        self._sendto(self.dtls._tx_srtp.protect(data), self._address)
        self.packets_sent += 1

    def send_rtcp(self, data: bytes) -> None:
        if self.dtls._state is not State.CONNECTED or not self._route():
            return
        assert self._sendto is not None
        self._sendto(self.dtls._tx_srtp.protect_rtcp(data), self._address)

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
        """Take SRTP out of aioice's path from now on (idempotent): each local socket's
        datagram callback hands RTP and RTCP here before aioice tries to parse them as
        STUN. RTP that aioice had already queued still reaches aiortc's
        `_handle_rtp_data`: it gets the same parsing and delivery."""
        if self._receiving:
            return
        self._receiving = True
        self.dtls._handle_rtp_data = self._handle_queued  # type: ignore[method-assign]
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
        if (
            srtp is None
            or 192 <= data[1] <= 208  # RTCP: aiortc parses and routes it
            or self.dtls._state is not State.CONNECTED
        ):
            self.connection.data_received(data, component)  # aioice's queue, as before
            return
        try:
            data = srtp.unprotect(data)
        except pylibsrtp.Error:
            return  # replayed or forged: aiortc drops these too
        self._deliver(data)

    async def _handle_queued(self, data: bytes, arrival_time_ms: int) -> None:
        self._deliver(data)

    def _deliver(self, data: bytes) -> None:
        try:
            packet = RtpHeader.parse(data)
        except ValueError:
            return
        self.packets_received += 1
        # Every receiver on a server transport is a ForwardingReceiver.
        route = self.dtls._rtp_router.route_rtp
        receiver: RtpHandler | None = route(packet)  # type: ignore[arg-type,assignment]
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
