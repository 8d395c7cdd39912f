"""One client's session: waiting for `join`, then a peer in a room. Each message becomes a
room command or goes to the peer's negotiation; nothing here reads or writes a socket."""

from __future__ import annotations

import asyncio
import logging

from ..config import Config
from ..protocol import (
    REFUSAL_CLOSE_CODES,
    Answer,
    BadMessage,
    ClientMessage,
    CloseCode,
    Error,
    IceCandidate,
    Join,
    Leave,
    Mute,
    Publish,
    ServerShutdown,
    Unpublish,
)
from ..room import JoinRefused, LeaveReason, Room, RoomManager, ServerDraining
from ..webrtc import Peer
from .connection import WebSocketConnection

log = logging.getLogger(__name__)


class Session:
    """One client's session: awaiting join, then a peer in a room. Each message becomes a
    room command or goes to the peer's negotiation."""

    def __init__(
        self, room_id: str, manager: RoomManager, connection: WebSocketConnection, config: Config
    ) -> None:
        self.room_id = room_id
        self.manager = manager
        self.connection = connection
        self.config = config
        self.room: Room | None = None
        self.peer: Peer | None = None

    async def handle(self, message: ClientMessage) -> None:
        if self.peer is None or self.room is None:
            if not isinstance(message, Join):
                raise BadMessage("the first message must be join")
            await self._join(message)
            return
        peer, room = self.peer, self.room
        if peer.closed:
            return  # removed by the server; its socket is being closed
        if isinstance(message, Join):
            raise BadMessage("already joined")
        elif isinstance(message, Answer):
            await peer.handle_answer(message.sdp)
        elif isinstance(message, IceCandidate):
            await peer.add_ice_candidate(message)
        elif isinstance(message, Publish):
            room.publish(peer, message.source)
        elif isinstance(message, Unpublish):
            room.unpublish(peer, message.source)
        elif isinstance(message, Mute):
            room.mute(peer, message.source, message.muted)
        elif isinstance(message, Leave):
            await self.leave(LeaveReason.LEFT)

    async def _join(self, message: Join) -> None:
        peer = Peer(
            name=message.name,
            publish=message.publish,
            connection=self.connection,
            config=self.config,
        )
        try:
            self.room = await self.manager.join(self.room_id, peer)
        except JoinRefused as refusal:
            log.info("join refused", extra={"room_id": self.room_id, "code": str(refusal.code)})
            error = Error(refusal.code, refusal.message, signaling_url=refusal.signaling_url)
            self.connection.push(error)
            await self.connection.close(REFUSAL_CLOSE_CODES[refusal.code], str(refusal.code))
            return
        except ServerDraining as draining:
            self.connection.push(ServerShutdown(draining.retry_after))
            await self.connection.close(CloseCode.GOING_AWAY, "server shutting down")
            return
        self.peer = peer

    async def leave(self, reason: LeaveReason) -> None:
        if self.peer is not None and self.room is not None:
            # Shielded: aiohttp cancels the handler when the socket closes, and the peer
            # must still be removed and the others told.
            await asyncio.shield(self.manager.leave(self.room, self.peer, reason))
            self.peer = None
