"""Live rooms on this node: who is in each room, and who must renegotiate when that changes.

Room records (existence, expiry) live in the registry; this module holds the peers and
their media. It knows nothing of HTTP or WebSockets: peers talk through `Connection`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Coroutine
from typing import Any

from . import protocol
from .cluster import Node
from .config import Config
from .leave_reasons import LeaveReason, removal_close_code
from .negotiation import SEND, TrackKey, WantedTrack
from .peer import Connection, Peer, PublishedTrack
from .protocol import SOURCE_KIND, SOURCES, CloseCode, ErrorCode, Join
from .registry import RegistryUnavailable, RoomRecord, RoomRegistry, is_valid_room_id
from .stats import CallCounts, MediaCounts
from .turn_credentials import ice_servers_for

log = logging.getLogger(__name__)


class JoinRefused(Exception):
    def __init__(self, code: ErrorCode, message: str, signaling_url: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.signaling_url = signaling_url  # WRONG_NODE: where the room is served


class ServerDraining(Exception):
    """The server is shutting down: joins are refused with server-shutdown, close 1001."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("server shutting down")
        self.retry_after = retry_after


class Room:
    def __init__(self, room_id: str, manager: RoomManager) -> None:
        self.room_id = room_id
        self.manager = manager
        self.peers: dict[str, Peer] = {}  # in join order

    def remote_tracks(self, peer: Peer) -> list[WantedTrack]:
        """Every track the others publish and have negotiated, in join and source order."""
        return [
            WantedTrack((other.peer_id, source), SOURCE_KIND[source], SEND)
            for other in self.peers.values()
            if other is not peer
            for source in SOURCES
            if source in other.published
        ]

    def published_track(self, key: TrackKey) -> PublishedTrack | None:
        peer = self.peers.get(key[0])
        return peer.published.get(key[1]) if peer is not None else None

    def tracks_changed(self) -> None:
        for peer in self.peers.values():
            peer.request_offer()

    def remove_soon(self, peer: Peer, reason: LeaveReason) -> None:
        code = removal_close_code(reason)
        self.manager.spawn(self.manager.leave(self, peer, reason, close_code=code))

    async def broadcast(self, message: dict[str, Any], *, exclude: Peer | None = None) -> None:
        for peer in list(self.peers.values()):
            if peer is not exclude:
                await peer.connection.send(message)


class RoomManager:
    def __init__(self, config: Config, registry: RoomRegistry, node: Node) -> None:
        self.config = config
        self.registry = registry
        self.node = node
        self.rooms: dict[str, Room] = {}
        self.counts = CallCounts()
        self.retired_media = MediaCounts()  # counted by peers that have left
        self._tasks: set[asyncio.Task[Any]] = set()
        self._keepalive: asyncio.Task[None] | None = None
        self._drain_retry_after: int | None = None  # set while the server drains

    @property
    def room_count(self) -> int:
        """Rooms with at least one connected peer on this node."""
        return len(self.rooms)

    @property
    def peer_count(self) -> int:
        return sum(len(room.peers) for room in self.rooms.values())

    def participants(self, room_id: str) -> int:
        room = self.rooms.get(room_id)
        return len(room.peers) if room is not None else 0

    def live_counts(self) -> dict[str, int]:
        """Peers per room live on this node."""
        return {room_id: len(room.peers) for room_id, room in self.rooms.items()}

    def end_rooms_soon(self, room_ids: list[str]) -> None:
        """Rooms deleted through another node: end their calls here."""
        for room_id in room_ids:
            self.spawn(self.end_room(room_id))

    async def join(self, room_id: str, join: Join, connection: Connection) -> tuple[Room, Peer]:
        """Admit a peer and send it `joined`, or raise JoinRefused with the error code
        (ServerDraining while the server shuts down)."""
        if self._drain_retry_after is not None:
            raise ServerDraining(self._drain_retry_after)
        try:
            return await self._join(room_id, join, connection)
        except JoinRefused as refusal:
            self.counts.join_refusals[str(refusal.code)] += 1
            raise

    async def _join(self, room_id: str, join: Join, connection: Connection) -> tuple[Room, Peer]:
        if not is_valid_room_id(room_id):
            raise JoinRefused(ErrorCode.INVALID_ROOM_ID, "Room ids are 10 letters and digits.")
        record = await self._routed_record(room_id)
        if self._drain_retry_after is not None:  # the drain began while we asked the registry
            raise ServerDraining(self._drain_retry_after)
        room = self.rooms.get(room_id)
        if record is not None and record.expired() and room is None:
            raise JoinRefused(ErrorCode.ROOM_EXPIRED, "This room has expired.")
        room = self.rooms.setdefault(room_id, Room(room_id, self))
        if len(room.peers) >= self.config.rooms.max_peers:
            raise JoinRefused(
                ErrorCode.ROOM_FULL,
                f"This room already has {self.config.rooms.max_peers} participants.",
            )
        peer = Peer(
            name=join.name,
            publish=join.publish,
            connection=connection,
            room=room,
            config=self.config,
        )
        others = [p.info for p in room.peers.values()]
        room.peers[peer.peer_id] = peer
        self.counts.joins += 1
        self._ensure_keepalive()
        log.info(
            "peer joined",
            extra={"room_id": room_id, "peer_id": peer.peer_id, "peers": len(room.peers)},
        )
        await connection.send(
            protocol.joined(
                peer.peer_id, room_id, others, ice_servers_for(self.config.ice, peer.peer_id)
            )
        )
        await room.broadcast(protocol.peer_joined(peer.info), exclude=peer)
        peer.request_offer()
        self.node.rooms_changed()
        await self._touch(room_id)
        return room, peer

    async def _routed_record(self, room_id: str) -> RoomRecord | None:
        """The room's record if this node serves the room; else JoinRefused (WRONG_NODE with
        the serving node's URL, ROOM_NOT_FOUND, REGISTRY_UNAVAILABLE).

        Without the registry, a room already live here still admits joins (None): it exists,
        this node holds it, and a call in progress keeps it from expiring."""
        try:
            record = await self.registry.get(room_id)
            if record is None:
                raise JoinRefused(ErrorCode.ROOM_NOT_FOUND, "There is no such room.")
            owner = await self.node.route(record)
        except LookupError:
            raise JoinRefused(ErrorCode.ROOM_NOT_FOUND, "There is no such room.") from None
        except RegistryUnavailable:
            if room_id in self.rooms:
                return None
            raise JoinRefused(
                ErrorCode.REGISTRY_UNAVAILABLE, "The room registry is unavailable; try again."
            ) from None
        if owner.node_id != self.node.node_id:
            raise JoinRefused(
                ErrorCode.WRONG_NODE,
                "This room is served by another node.",
                signaling_url=owner.room_signaling_url(room_id),
            )
        return record

    async def _touch(self, room_id: str) -> None:
        """Record activity; never fails a join or leave (the record may be gone or the
        registry down: the keepalive and the heartbeat catch up)."""
        try:
            await self.registry.touch(room_id)
        except RegistryUnavailable:
            log.debug("touch failed", exc_info=True)

    async def leave(
        self, room: Room, peer: Peer, reason: LeaveReason, close_code: int | None = None
    ) -> None:
        """Remove a peer (idempotent); the others get peer-left and a new offer.

        With `close_code`, the peer's socket is closed too (it vanished or failed)."""
        if room.peers.get(peer.peer_id) is not peer:
            return
        del room.peers[peer.peer_id]
        self._retire(peer, reason)
        if not room.peers and self.rooms.get(room.room_id) is room:
            del self.rooms[room.room_id]
        log.info(
            "peer left",
            extra={"room_id": room.room_id, "peer_id": peer.peer_id, "reason": reason},
        )
        await peer.close()
        await room.broadcast(protocol.peer_left(peer.peer_id))
        room.tracks_changed()
        if close_code is not None:
            await peer.connection.close(close_code, str(reason))
        self.node.rooms_changed()
        await self._touch(room.room_id)

    async def end_room(self, room_id: str) -> None:
        """Send room-ended to every peer of the room and disconnect them (close 4001)."""
        room = self.rooms.pop(room_id, None)
        if room is None:
            return
        self.node.rooms_changed()
        peers = list(room.peers.values())
        room.peers.clear()
        for peer in peers:
            self._retire(peer, LeaveReason.ROOM_ENDED)
        for peer in peers:
            await peer.close()
            await peer.connection.send(protocol.room_ended())
            await peer.connection.close(CloseCode.ROOM_ENDED, "room ended")
        log.info("room ended", extra={"room_id": room_id, "peers": len(peers)})

    async def begin_drain(self, retry_after: int) -> None:
        """Refuse joins from now on and tell every peer the server is going away; their
        calls go on until `close`."""
        self._drain_retry_after = retry_after
        log.info("draining", extra={"rooms": self.room_count, "peers": self.peer_count})
        for room in list(self.rooms.values()):
            await room.broadcast(protocol.server_shutdown(retry_after))

    async def wait_until_empty(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for every peer to leave; True if they all did."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self.rooms:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return False
            await asyncio.sleep(min(0.1, remaining))  # shutdown only: polling is fine here
        return True

    async def close(self) -> None:
        """Disconnect every peer (server shutdown)."""
        if self._keepalive is not None:
            self._keepalive.cancel()
        rooms = list(self.rooms.values())
        self.rooms.clear()
        for room in rooms:
            # Cleared first, so that no one is told of each departure or renegotiates.
            peers = list(room.peers.values())
            room.peers.clear()
            for peer in peers:
                self._retire(peer, LeaveReason.SERVER_SHUTDOWN)
            for peer in peers:
                await peer.close()
                await peer.connection.close(CloseCode.GOING_AWAY, "server shutting down")
        for task in list(self._tasks):
            task.cancel()

    def media_counts(self) -> MediaCounts:
        """What every peer's forwarding has counted, those that left included (/metrics)."""
        counts = dataclasses.replace(self.retired_media)
        for room in self.rooms.values():
            for peer in room.peers.values():
                counts.add(peer.media_counts())
        return counts

    def _retire(self, peer: Peer, reason: LeaveReason) -> None:
        """Called in the same step that removes the peer from its room, so that its counts
        are never both live and retired, nor neither."""
        self.counts.leaves[reason] += 1
        self.retired_media.add(peer.media_counts())

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _ensure_keepalive(self) -> None:
        if self._keepalive is None or self._keepalive.done():
            self._keepalive = asyncio.ensure_future(self._keep_rooms_alive())

    async def _keep_rooms_alive(self) -> None:
        """A call in progress is activity: keep its room from expiring under it."""
        interval = min(600.0, self.config.rooms.expire_after_hours * 3600 / 4)
        while True:
            await asyncio.sleep(interval)
            for room_id in list(self.rooms):
                await self._touch(room_id)
