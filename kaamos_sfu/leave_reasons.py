"""Why a peer left its room: the `reason` of the "peer left" log line and of
`kaamos_leaves_total`, and the close code its socket gets when the server removes it."""

from __future__ import annotations

from enum import StrEnum

from .protocol import CloseCode


class LeaveReason(StrEnum):
    # The client ended it.
    LEFT = "left"  # sent `leave`
    SOCKET_CLOSED = "socket closed"  # closed its WebSocket
    CONNECTION_CLOSED = "connection closed"  # closed its RTCPeerConnection (DTLS close)
    # The client is gone or broken, as the server found out.
    HEARTBEAT = "heartbeat"  # its WebSocket answered no ping (signaling.ping_timeout_seconds)
    MEDIA_TIMEOUT = "media timeout"  # no RTP, RTCP or ICE check (rooms.peer_timeout_seconds)
    CONSENT_EXPIRED = "consent expired"  # no answer to ICE consent checks for 30 s
    CONNECTION_FAILED = "connection failed"  # ICE or DTLS failed
    OFFER_UNANSWERED = "offer unanswered"  # signaling.answer_timeout_seconds
    SOCKET_ERROR = "socket error"  # the WebSocket broke (a protocol error, a reset)
    FLOOD = "flood"  # too many messages, or too many bad ones
    NOT_READING = "not reading"  # fell MAX_QUEUED messages behind
    # The server ended it.
    NO_MEDIA_PORT = "no media port"
    INTERNAL_ERROR = "internal error"
    ROOM_ENDED = "room ended"
    SERVER_SHUTDOWN = "server shutdown"


# The close code of a peer's socket when the server removes the peer for this reason.
REMOVAL_CLOSE_CODES = {
    LeaveReason.INTERNAL_ERROR: CloseCode.INTERNAL_ERROR,
    LeaveReason.NO_MEDIA_PORT: CloseCode.TRY_AGAIN_LATER,
    LeaveReason.NOT_READING: CloseCode.TOO_SLOW,
    LeaveReason.FLOOD: CloseCode.FLOOD,
}


def removal_close_code(reason: LeaveReason) -> int:
    """A server-side removal closes with TIMEOUT (4408) unless another code says more."""
    return REMOVAL_CLOSE_CODES.get(reason, CloseCode.TIMEOUT)
