"""The calls live on this node: admission against the room registry, removal, the end of a
room, and the drain before the server stops.

Room records (existence, expiry, which node holds a room) live in the registry; this
module holds the live rooms and their participants. It knows nothing of WebRTC, HTTP or
WebSockets: participants are anything that implements `Participant`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Coroutine
from typing import Any

from ..cluster.node import Node
from ..cluster.registry import RegistryUnavailable, RoomRecord, RoomRegistry, is_valid_room_id
from ..config import Config
from ..ice.turn import ice_servers_for
from ..protocol import ErrorCode, Joined, RoomEnded, ServerShutdown
from ..stats import CallCounts, MediaCounts
from .leave_reasons import LeaveReason
from .participant import Participant
from .room import Room

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


class RoomManager:
    def __init__(self, config: Config, registry: RoomRegistry, node: Node) -> None:
        self.config = config
        self.registry = registry
        self.node = node
        self.rooms: dict[str, Room] = {}
        self.counts = CallCounts()
        self.retired_media = MediaCounts()  # counted by participants that have left
        self._tasks: set[asyncio.Task[Any]] = set()
        self._keepalive: asyncio.Task[None] | None = None
        self._drain_retry_after: int | None = None  # set while the server drains

    @property
    def room_count(self) -> int:
        """Rooms with at least one participant on this node."""
        return len(self.rooms)

    @property
    def peer_count(self) -> int:
        return sum(len(room) for room in self.rooms.values())

    def participants(self, room_id: str) -> int:
        room = self.rooms.get(room_id)
        return len(room) if room is not None else 0

    def live_counts(self) -> dict[str, int]:
        """Participants per room live on this node."""
        return {room_id: len(room) for room_id, room in self.rooms.items()}

    def end_rooms_soon(self, room_ids: list[str]) -> None:
        """Rooms deleted through another node: end their calls here."""
        for room_id in room_ids:
            self.spawn(self.end_room(room_id))

    async def join(self, room_id: str, participant: Participant) -> Room:
        """Admit a participant: it gets `joined`, the others `peer-joined`. Raises
        JoinRefused with the error code, or ServerDraining while the server shuts down."""
        if self._drain_retry_after is not None:
            raise ServerDraining(self._drain_retry_after)
        try:
            room = await self._admit(room_id)
        except JoinRefused as refusal:
            self.counts.join_refusals[str(refusal.code)] += 1
            raise
        # No await from the admission to here: the room cannot fill up in between.
        participant_id = participant.info.peer_id
        others = [p.info.to_json() for p in room.participants.values()]
        ice_servers = ice_servers_for(self.config.ice, participant_id)
        participant.push(Joined(participant_id, room_id, others, ice_servers))
        room.join(participant)
        self.counts.joins += 1
        self._ensure_keepalive()
        log.info(
            "peer joined",
            extra={"room_id": room_id, "peer_id": participant_id, "peers": len(room)},
        )
        participant.admitted(room)
        self.node.rooms_changed()
        await self._touch(room_id)
        return room

    async def _admit(self, room_id: str) -> Room:
        """The live room to join, or JoinRefused."""
        if not is_valid_room_id(room_id):
            raise JoinRefused(ErrorCode.INVALID_ROOM_ID, "Room ids are 10 letters and digits.")
        record = await self._routed_record(room_id)
        if self._drain_retry_after is not None:  # the drain began while we asked the registry
            raise ServerDraining(self._drain_retry_after)
        room = self.rooms.get(room_id)
        if record is not None and record.expired() and room is None:
            raise JoinRefused(ErrorCode.ROOM_EXPIRED, "This room has expired.")
        if room is None:
            room = self.rooms[room_id] = Room(room_id, self._remove_soon)
        if len(room) >= self.config.rooms.max_peers:
            raise JoinRefused(
                ErrorCode.ROOM_FULL,
                f"This room already has {self.config.rooms.max_peers} participants.",
            )
        return room

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

    def _remove_soon(self, room: Room, participant: Participant, reason: LeaveReason) -> None:
        self.spawn(self.leave(room, participant, reason))

    async def leave(self, room: Room, participant: Participant, reason: LeaveReason) -> None:
        """Remove a participant (idempotent): the others get peer-left and stop receiving
        it; it is closed, its socket with the reason's close code."""
        if not room.leave(participant):
            return
        self._retire(participant, reason)
        if not room.participants and self.rooms.get(room.room_id) is room:
            del self.rooms[room.room_id]
        log.info(
            "peer left",
            extra={"room_id": room.room_id, "peer_id": participant.info.peer_id, "reason": reason},
        )
        await participant.close(reason)
        self.node.rooms_changed()
        await self._touch(room.room_id)

    async def end_room(self, room_id: str) -> None:
        """Send room-ended to every participant of the room and let them go (close 4001)."""
        room = self.rooms.pop(room_id, None)
        if room is None:
            return
        self.node.rooms_changed()
        participants = self._clear(room, LeaveReason.ROOM_ENDED)
        for participant in participants:
            participant.push(RoomEnded())
            await participant.close(LeaveReason.ROOM_ENDED)
        log.info("room ended", extra={"room_id": room_id, "peers": len(participants)})

    async def begin_drain(self, retry_after: int) -> None:
        """Refuse joins from now on and tell every participant the server is going away;
        their calls go on until `close`."""
        self._drain_retry_after = retry_after
        log.info("draining", extra={"rooms": self.room_count, "peers": self.peer_count})
        for room in list(self.rooms.values()):
            room.broadcast(ServerShutdown(retry_after))

    async def wait_until_empty(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for every participant to leave; True if all did."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self.rooms:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return False
            await asyncio.sleep(min(0.1, remaining))  # shutdown only: polling is fine here
        return True

    async def close(self) -> None:
        """Let every participant go (server shutdown)."""
        if self._keepalive is not None:
            self._keepalive.cancel()
        rooms = list(self.rooms.values())
        self.rooms.clear()
        for room in rooms:
            for participant in self._clear(room, LeaveReason.SERVER_SHUTDOWN):
                await participant.close(LeaveReason.SERVER_SHUTDOWN)
        for task in list(self._tasks):
            task.cancel()

    def _clear(self, room: Room, reason: LeaveReason) -> list[Participant]:
        """Empty a room at once, so that no one is told of each departure or renegotiates."""
        participants = list(room.participants.values())
        room.participants.clear()
        room.tracks.clear()
        for participant in participants:
            self._retire(participant, reason)
        return participants

    def media_counts(self) -> MediaCounts:
        """What every participant's forwarding has counted, those gone included (/metrics)."""
        counts = dataclasses.replace(self.retired_media)
        for room in self.rooms.values():
            for participant in room.participants.values():
                counts.add(participant.media_counts())
        return counts

    def _retire(self, participant: Participant, reason: LeaveReason) -> None:
        """Called in the same step that removes the participant from its room, so that its
        counts are never both live and retired, nor neither."""
        self.counts.leaves[reason] += 1
        self.retired_media.add(participant.media_counts())

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
