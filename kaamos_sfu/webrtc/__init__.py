"""The WebRTC participant: a browser in a room, behind a WebSocket and an aiortc peer
connection whose transceivers forward instead of decoding (`rtc_bridge/`).

`peer.Peer` implements `room.Participant`; `media_lines` binds its m-lines to tracks,
`negotiation` plans the m-lines, `offer_cycle` keeps offers one at a time.
"""

from .peer import Connection, Peer

__all__ = ["Connection", "Peer"]
