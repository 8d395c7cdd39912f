"""Room registry: which rooms exist, when they were made and when they expire.

The live media of a room (its peers and their connections) lives in `rooms.RoomManager`;
this registry only stores room records, so a Redis implementation can replace the
in-memory one without touching the media code.
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

    @property
    def expires_at(self) -> float:
        return self.last_activity + self.ttl_seconds

    def expired(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) >= self.expires_at


class RoomRegistry(Protocol):
    """Where room records live. All methods are coroutines so that Redis can back them."""

    async def create(self, creator_user_id: CreatorId) -> RoomRecord: ...

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

    async def rate_limit(self, key: str, limit: int, window_seconds: float) -> float:
        """Record one event under `key` unless `limit` events already happened in the last
        `window_seconds`; return 0.0 if it was recorded, else the seconds until one would be.

        Rate limits live here so that they are shared by every node that shares the registry.
        """
        ...

    async def close(self) -> None: ...
