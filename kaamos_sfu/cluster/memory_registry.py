"""The in-memory room registry: the default `RoomRegistry` for a single node.

An expired room is kept for one more ttl so that the API and signaling can say "expired"
(410, close 4410) instead of "not found"; after that it is purged. Purging happens lazily
on `create` and `count`, so there is no background task to start or cancel.

Rate limits are sliding windows: the times of the last `limit` events per key. Nodes are
kept like in Redis (a heartbeat with a ttl), so one node routes through the same code as a
cluster: it is simply the only node.

With a `state_dir`, the room records (only they: not rate limits, nodes or tombstones) are
read from <state_dir>/rooms.json at construction and kept current there (`room_snapshot`),
so rooms survive a restart and a crash.
"""

from __future__ import annotations

import dataclasses
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from .registry import (
    PLACEMENT_WINDOW_SECONDS,
    TOMBSTONE_SECONDS,
    CreatorId,
    NodeInfo,
    RoomCapReached,
    RoomRecord,
    new_room_id,
)
from .room_snapshot import SAVE_DELAY, SNAPSHOT_FILE, RoomFile

# Rate-limit keys kept before stale ones are swept (one per creator, token or IP).
_EVENT_KEYS_BEFORE_SWEEP = 10_000


class MemoryRegistry:
    def __init__(
        self,
        ttl_seconds: float,
        clock: Callable[[], float] = time.time,
        *,
        state_dir: Path | None = None,
        save_delay: float = SAVE_DELAY,
    ) -> None:
        """Without `state_dir` the rooms live only as long as the object (tests)."""
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive")
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._rooms: dict[str, RoomRecord] = {}
        self._events: dict[str, deque[float]] = {}
        self._nodes: dict[str, NodeInfo] = {}
        self._placed: deque[tuple[float, str]] = deque()  # (time, node_id), oldest first
        self._tombstones: dict[str, float] = {}  # deleted room id -> when
        self._file: RoomFile | None = None
        if state_dir is not None:
            self._file = RoomFile(state_dir / SNAPSHOT_FILE, self.records, save_delay)
            now = clock()
            for record in self._file.load():
                if not self._purgeable(record, now):
                    self._rooms[record.room_id] = record

    async def create(
        self, creator_user_id: CreatorId, node_id: str | None = None, max_rooms: int | None = None
    ) -> RoomRecord:
        now = self._clock()
        self._purge(now)
        if max_rooms is not None and self._count(now) >= max_rooms:
            raise RoomCapReached(max_rooms)
        room_id = new_room_id()
        while room_id in self._rooms:  # about 59 bits: this almost never loops
            room_id = new_room_id()
        record = RoomRecord(
            room_id=room_id,
            creator_user_id=creator_user_id,
            created_at=now,
            last_activity=now,
            ttl_seconds=self.ttl_seconds,
            node_id=node_id,
        )
        self._rooms[room_id] = record
        self._record_placement(now, node_id)
        if self._file is not None:
            await self._file.save_now()  # the link handed out must outlive a crash
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
            self._changed()

    async def delete(self, room_id: str) -> bool:
        now = self._clock()
        for old in [r for r, at in self._tombstones.items() if at <= now - TOMBSTONE_SECONDS]:
            del self._tombstones[old]
        self._tombstones[room_id] = now
        record = self._rooms.pop(room_id, None)
        if record is not None and self._file is not None:
            await self._file.save_now()  # a crash must not bring a deleted room back
        return record is not None and not self._purgeable(record, now)

    async def count(self) -> int:
        now = self._clock()
        if self._purge(now):
            self._changed()
        return self._count(now)

    def _count(self, now: float) -> int:
        return sum(1 for record in self._rooms.values() if not record.expired(now))

    async def claim(self, room_id: str, expected: str | None, node_id: str) -> RoomRecord | None:
        now = self._clock()
        record = self._rooms.get(room_id)
        if record is None or self._purgeable(record, now):
            return None
        if record.node_id == expected:
            record.node_id = node_id
            record.participants = 0
            self._record_placement(now, node_id)
            self._changed()
        return dataclasses.replace(record)

    async def sync_rooms(self, node_id: str, counts: dict[str, int]) -> list[str]:
        now = self._clock()
        ended = []
        for room_id, count in counts.items():
            record = self._rooms.get(room_id)
            if room_id in self._tombstones:
                ended.append(room_id)
            elif record is not None:
                # Only this node's rooms (else it moved), and only a change is saved: this
                # runs on every heartbeat.
                if record.node_id == node_id and record.participants != count:
                    record.participants = count
                    self._changed()
            elif count:
                self._rooms[room_id] = RoomRecord(
                    room_id, None, now, now, self.ttl_seconds, node_id, count
                )
                self._changed()
        return ended

    async def heartbeat(self, node: NodeInfo, ttl_seconds: float) -> None:
        self._nodes[node.node_id] = dataclasses.replace(
            node, placed=0, expires_at=self._clock() + ttl_seconds
        )

    async def nodes(self) -> list[NodeInfo]:
        now = self._clock()
        while self._placed and self._placed[0][0] <= now - PLACEMENT_WINDOW_SECONDS:
            self._placed.popleft()
        for node_id in [n.node_id for n in self._nodes.values() if n.expires_at <= now]:
            del self._nodes[node_id]
        return [
            dataclasses.replace(node, placed=sum(1 for _, n in self._placed if n == node.node_id))
            for node in self._nodes.values()
        ]

    async def remove_node(self, node_id: str) -> None:
        self._nodes.pop(node_id, None)

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
        """Every record still kept (expired ones included), for the snapshot."""
        now = self._clock()
        return [dataclasses.replace(r) for r in self._rooms.values() if not self._purgeable(r, now)]

    async def close(self) -> None:
        """Save the rooms a last time (with a state_dir), then forget everything."""
        if self._file is not None:
            await self._file.close()
        self._rooms.clear()
        self._events.clear()
        self._nodes.clear()
        self._placed.clear()
        self._tombstones.clear()

    def _changed(self) -> None:
        """A change that may reach the disk lazily: it is cheap to lose in a crash (see
        room_snapshot), and it happens on every join and leave."""
        if self._file is not None:
            self._file.save_soon()

    def _record_placement(self, now: float, node_id: str | None) -> None:
        if node_id is not None:
            self._placed.append((now, node_id))

    @staticmethod
    def _purgeable(record: RoomRecord, now: float) -> bool:
        return now >= record.expires_at + record.ttl_seconds

    def _sweep_events(self, now: float, window_seconds: float) -> None:
        """Forget keys with no event in the window, so that one-off callers do not pile up."""
        for key in [
            k for k, ev in self._events.items() if not ev or ev[-1] <= now - window_seconds
        ]:
            del self._events[key]

    def _purge(self, now: float) -> bool:
        """Drop records past their second ttl; True if there were any."""
        stale = [r.room_id for r in self._rooms.values() if self._purgeable(r, now)]
        for room_id in stale:
            del self._rooms[room_id]
        return bool(stale)
