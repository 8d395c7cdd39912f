"""Why a participant left its room: the `reason` of the "peer left" log line and of
`kaamos_leaves_total`, and the close code its socket gets."""

from __future__ import annotations

from enum import StrEnum

from ..protocol import CloseCode


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


# The close code of the participant's socket. A socket the client closed, or that broke,
# is closed already; for the others this is what the client reads.
_CLOSE_CODES = {
    LeaveReason.LEFT: CloseCode.NORMAL,
    LeaveReason.SOCKET_CLOSED: CloseCode.NORMAL,
    LeaveReason.SOCKET_ERROR: CloseCode.NORMAL,
    LeaveReason.FLOOD: CloseCode.FLOOD,
    LeaveReason.NOT_READING: CloseCode.TOO_SLOW,
    LeaveReason.NO_MEDIA_PORT: CloseCode.TRY_AGAIN_LATER,
    LeaveReason.INTERNAL_ERROR: CloseCode.INTERNAL_ERROR,
    LeaveReason.ROOM_ENDED: CloseCode.ROOM_ENDED,
    LeaveReason.SERVER_SHUTDOWN: CloseCode.GOING_AWAY,
}


def close_code(reason: LeaveReason) -> CloseCode:
    """Every other reason is the server giving up on a silent or broken client: 4408."""
    return _CLOSE_CODES.get(reason, CloseCode.TIMEOUT)
