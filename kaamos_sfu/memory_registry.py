"""The in-memory room registry: the default `RoomRegistry` for a single node.

An expired room is kept for one more ttl so that the API and signaling can say "expired"
(410, close 4410) instead of "not found"; after that it is purged. Purging happens lazily
on `create` and `count`, so there is no background task to start or cancel.

Rate limits are sliding windows: the times of the last `limit` events per key.
"""

from __future__ import annotations

import dataclasses
import time
from collections import deque
from collections.abc import Callable

from .registry import CreatorId, RoomRecord, new_room_id

# Rate-limit keys kept before stale ones are swept (one per creator, token or IP).
_EVENT_KEYS_BEFORE_SWEEP = 10_000


class MemoryRegistry:
    def __init__(self, ttl_seconds: float, clock: Callable[[], float] = time.time) -> None:
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive")
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._rooms: dict[str, RoomRecord] = {}
        self._events: dict[str, deque[float]] = {}

    async def create(self, creator_user_id: CreatorId) -> RoomRecord:
        now = self._clock()
        self._purge(now)
        room_id = new_room_id()
        while room_id in self._rooms:  # about 59 bits: this almost never loops
            room_id = new_room_id()
        record = RoomRecord(
            room_id=room_id,
            creator_user_id=creator_user_id,
            created_at=now,
            last_activity=now,
            ttl_seconds=self.ttl_seconds,
        )
        self._rooms[room_id] = record
        return dataclasses.replace(record)

    async def get(self, room_id: str) -> RoomRecord | None:
        record = self._rooms.get(room_id)
        if record is None or self._purgeable(record, self._clock()):
            return None
        # A copy, as a Redis registry would return: callers cannot change the stored record.
        return dataclasses.replace(record)

    async def touch(self, room_id: str) -> None:
        """Move the room's expiry to now + ttl; a deleted or purged room stays gone.

        An expired but kept room is extended too: RoomManager admits joins to an expired
        room while its call is still running on this node, and touches it then.
        """
        now = self._clock()
        record = self._rooms.get(room_id)
        if record is not None and not self._purgeable(record, now):
            record.last_activity = now

    async def delete(self, room_id: str) -> bool:
        record = self._rooms.pop(room_id, None)
        return record is not None and not self._purgeable(record, self._clock())

    async def count(self) -> int:
        now = self._clock()
        self._purge(now)
        return sum(1 for record in self._rooms.values() if not record.expired(now))

    async def rate_limit(self, key: str, limit: int, window_seconds: float) -> float:
        now = self._clock()
        if len(self._events) >= _EVENT_KEYS_BEFORE_SWEEP:
            self._sweep_events(now, window_seconds)
        events = self._events.setdefault(key, deque(maxlen=limit))
        while events and events[0] <= now - window_seconds:
            events.popleft()
        if len(events) >= limit:
            return events[0] + window_seconds - now
        events.append(now)
        return 0.0

    def records(self) -> list[RoomRecord]:
        """Every record still kept (expired ones included), for a snapshot."""
        now = self._clock()
        return [dataclasses.replace(r) for r in self._rooms.values() if not self._purgeable(r, now)]

    def restore(self, records: list[RoomRecord]) -> None:
        """Put back records from a snapshot, as they were (the purge drops stale ones)."""
        for record in records:
            self._rooms[record.room_id] = dataclasses.replace(record)

    async def close(self) -> None:
        self._rooms.clear()
        self._events.clear()

    @staticmethod
    def _purgeable(record: RoomRecord, now: float) -> bool:
        return now >= record.expires_at + record.ttl_seconds

    def _sweep_events(self, now: float, window_seconds: float) -> None:
        """Forget keys with no event in the window, so that one-off callers do not pile up."""
        for key in [
            k for k, ev in self._events.items() if not ev or ev[-1] <= now - window_seconds
        ]:
            del self._events[key]

    def _purge(self, now: float) -> None:
        for room_id in [r.room_id for r in self._rooms.values() if self._purgeable(r, now)]:
            del self._rooms[room_id]
