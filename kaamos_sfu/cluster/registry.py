"""Room registry: which rooms exist, when they expire, which node holds each, and the nodes.

The live media of a room (its peers and their connections) lives in `rooms.RoomManager`;
this registry only stores records, so the Redis implementation (`redis_registry`) can
replace the in-memory one (`memory_registry`) without touching the media code. With Redis,
every node of a cluster sees the same rooms, nodes and rate limits (docs/scaling.md).
"""

from __future__ import annotations

import math
import re
import secrets
import string
import time
from dataclasses import dataclass
from typing import Protocol

ROOM_ID_ALPHABET = string.ascii_letters + string.digits
ROOM_ID_LENGTH = 10
ROOM_ID_RE = re.compile(r"^[a-zA-Z0-9]{10}$")

CreatorId = int | str | None

# A room placed on a node counts towards that node's load for this long, so that rooms
# created in a burst spread out before their first peer shows in the node's heartbeat.
PLACEMENT_WINDOW_SECONDS = 60.0
# A deleted room is remembered this long, so that the node holding its call ends it.
TOMBSTONE_SECONDS = 3600.0


class RegistryUnavailable(Exception):
    """The shared registry (Redis) cannot be reached; the API answers 503."""


class RoomCapReached(Exception):
    """`create(max_rooms=N)` found N rooms already: the API answers 503 AT_CAPACITY."""


def new_room_id() -> str:
    """A 10-character room id from the OS CSPRNG (about 59 bits)."""
    return "".join(secrets.choice(ROOM_ID_ALPHABET) for _ in range(ROOM_ID_LENGTH))


def is_valid_room_id(room_id: str) -> bool:
    return ROOM_ID_RE.fullmatch(room_id) is not None


def retry_after_seconds(wait: float) -> int:
    """A `rate_limit` wait as whole seconds for Retry-After: rounded up, at least 1."""
    return max(1, math.ceil(wait))


@dataclass
class RoomRecord:
    room_id: str
    creator_user_id: CreatorId
    created_at: float  # unix seconds
    last_activity: float  # unix seconds; create, join and leave move it
    ttl_seconds: float  # expiry after the last activity
    node_id: str | None = None  # the node that holds the room's media
    participants: int = 0  # peers in the room, as last published by its node

    @property
    def expires_at(self) -> float:
        return self.last_activity + self.ttl_seconds

    def expired(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) >= self.expires_at


@dataclass
class NodeInfo:
    """One SFU process as the cluster sees it (its heartbeat)."""

    node_id: str
    url: str  # http(s) base URL of the node itself
    signaling_url: str  # ws(s) base URL: a room's WebSocket is <signaling_url>/ws/<room_id>
    capacity: int  # rooms it is meant to hold: placement weighs load by it
    rooms: int = 0  # rooms with peers on it now
    peers: int = 0
    placed: int = 0  # rooms placed on it within PLACEMENT_WINDOW_SECONDS (filled by nodes())
    expires_at: float = 0.0  # unix seconds; the node is dead from then on unless it beats
    draining: bool = False  # shutting down: its calls go on, but it takes no new rooms

    def room_signaling_url(self, room_id: str) -> str:
        return f"{self.signaling_url}/ws/{room_id}"


class RoomRegistry(Protocol):
    """Where room records and nodes live. All methods are coroutines so that Redis can back
    them; a shared registry that cannot be reached raises RegistryUnavailable."""

    async def create(
        self, creator_user_id: CreatorId, node_id: str | None = None, max_rooms: int | None = None
    ) -> RoomRecord:
        """A new room with a fresh id, held by `node_id`. With `max_rooms`, raise RoomCapReached
        instead when that many rooms exist (as `count()` counts them), checked in the same
        atomic step as the creation: concurrent creates through any node never exceed it."""
        ...

    async def get(self, room_id: str) -> RoomRecord | None:
        """The record, expired or not, or None if it never existed or was deleted/purged."""
        ...

    async def touch(self, room_id: str) -> None:
        """Record activity: the room's expiry moves to now + ttl."""
        ...

    async def delete(self, room_id: str) -> bool: ...

    async def count(self) -> int:
        """Rooms that exist and have not expired."""
        ...

    async def claim(self, room_id: str, expected: str | None, node_id: str) -> RoomRecord | None:
        """Atomically move the room to `node_id` if its holder is still `expected` (None: no
        holder); return the record as it is afterwards, or None if the room is gone. Two
        nodes that both find the holder dead both get the one winner's record."""
        ...

    async def sync_rooms(self, node_id: str, counts: dict[str, int]) -> list[str]:
        """Store the peer counts of the rooms live on `node_id` (of those whose record still
        places them there); return those of them that were deleted (the node ends their
        calls). A live room whose record is missing for another reason (Redis restarted
        without persistence) is recreated on `node_id`."""
        ...

    async def heartbeat(self, node: NodeInfo, ttl_seconds: float) -> None:
        """Register or refresh a node; it stays in `nodes()` for `ttl_seconds`."""
        ...

    async def nodes(self) -> list[NodeInfo]:
        """The live nodes (heartbeat within their ttl), with `placed` filled in."""
        ...

    async def remove_node(self, node_id: str) -> None:
        """A node that stops cleanly leaves the set at once."""
        ...

    async def rate_limit(self, key: str, limit: int, window_seconds: float) -> float:
        """Record one event under `key` unless `limit` events already happened in the last
        `window_seconds`; return 0.0 if it was recorded, else the seconds until one would be.

        Rate limits live here so that they are shared by every node that shares the registry.
        """
        ...

    async def close(self) -> None: ...
