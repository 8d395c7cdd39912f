"""The Redis room registry: rooms, nodes and rate limits shared by every node of a cluster.

Times come from an injectable clock and every expiry is decided from stored timestamps, as
in the in-memory registry, so both pass one contract suite; Redis key TTLs only collect
garbage a little after a record is logically gone. Every change that reads and then writes
is one Lua script, so two nodes never interleave. Keys (docs/scaling.md):

    <prefix>room:<id>       hash: creator, created_at, last_activity, ttl, node, participants
    <prefix>rooms           sorted set: room id -> expires_at (for the cluster-wide count)
    <prefix>nodes           hash: node id -> JSON NodeInfo with its expires_at
    <prefix>ended:<id>      a deleted room's tombstone, so its node ends the call (1 h)
    <prefix>placed:<node>   sorted set: room id -> time it was placed on the node
    <prefix>rate:<key>      sorted set: event id -> time (sliding window)

A connection or timeout error becomes RegistryUnavailable; redis-py reconnects on the next
call, so the node recovers by itself when Redis returns.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis import asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .registry import (
    PLACEMENT_WINDOW_SECONDS,
    TOMBSTONE_SECONDS,
    CreatorId,
    NodeInfo,
    RegistryUnavailable,
    RoomCapReached,
    RoomRecord,
    new_room_id,
)

T = TypeVar("T")

# Garbage collection of node entries: a node dead this long is deleted from the hash.
_NODE_GC_SECONDS = 300.0

_NODE_FIELDS = {f.name for f in dataclasses.fields(NodeInfo)}

# Lua numbers print with 14 digits; timestamps are formatted with 17 to keep milliseconds.
_LUA_NUM = "string.format('%.17g', {})"

_CREATE = """
if ARGV[10] ~= '' then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[11])
  if redis.call('ZCOUNT', KEYS[2], '(' .. ARGV[2], '+inf') >= tonumber(ARGV[10]) then
    return -1
  end
end
local last = redis.call('HGET', KEYS[1], 'last_activity')
if last and tonumber(last) + 2 * tonumber(redis.call('HGET', KEYS[1], 'ttl')) > tonumber(ARGV[2])
then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'creator', ARGV[1], 'created_at', ARGV[2], 'last_activity', ARGV[2],
           'ttl', ARGV[3], 'node', ARGV[4], 'participants', 0)
redis.call('EXPIRE', KEYS[1], ARGV[6])
redis.call('ZADD', KEYS[2], ARGV[7], ARGV[5])
if ARGV[4] ~= '' then
  redis.call('ZADD', KEYS[3], ARGV[2], ARGV[5])
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[8])
  redis.call('EXPIRE', KEYS[3], ARGV[9])
end
return 1
"""

_TOUCH = f"""
local last = redis.call('HGET', KEYS[1], 'last_activity')
if not last then return 0 end
local ttl = tonumber(redis.call('HGET', KEYS[1], 'ttl'))
local now = tonumber(ARGV[1])
if tonumber(last) + 2 * ttl <= now then return 0 end
redis.call('HSET', KEYS[1], 'last_activity', ARGV[1])
redis.call('ZADD', KEYS[2], {_LUA_NUM.format("now + ttl")}, ARGV[2])
redis.call('EXPIRE', KEYS[1], math.ceil(2 * ttl))
return 1
"""

_DELETE = """
local last = redis.call('HGET', KEYS[1], 'last_activity')
local ttl = redis.call('HGET', KEYS[1], 'ttl')
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('SET', KEYS[3], 1, 'EX', ARGV[3])
if last and tonumber(last) + 2 * tonumber(ttl) > tonumber(ARGV[1]) then return 1 end
return 0
"""

_CLAIM = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {} end
local owner = redis.call('HGET', KEYS[1], 'node') or ''
if owner == ARGV[1] then
  redis.call('HSET', KEYS[1], 'node', ARGV[2], 'participants', 0)
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[5])
  redis.call('EXPIRE', KEYS[2], ARGV[6])
end
return redis.call('HGETALL', KEYS[1])
"""

_SYNC_ROOMS = """
-- KEYS[1]: rooms sorted set; then per room its hash and tombstone keys
-- ARGV: node, now, ttl, expires_at, gc seconds; then per room its id and count
local ended = {}
for i = 0, (#KEYS - 1) / 2 - 1 do
  local key, tomb = KEYS[2 + 2 * i], KEYS[3 + 2 * i]
  local room, count = ARGV[6 + 2 * i], ARGV[7 + 2 * i]
  if redis.call('EXISTS', tomb) == 1 then
    table.insert(ended, room)
  elseif redis.call('EXISTS', key) == 1 then
    -- A room that moved to another node (this one lost Redis for a while) is not ours.
    if redis.call('HGET', key, 'node') == ARGV[1] then
      redis.call('HSET', key, 'participants', count)
    end
  elseif count ~= '0' then
    redis.call('HSET', key, 'creator', 'null', 'created_at', ARGV[2], 'last_activity', ARGV[2],
               'ttl', ARGV[3], 'node', ARGV[1], 'participants', count)
    redis.call('EXPIRE', key, ARGV[5])
    redis.call('ZADD', KEYS[1], ARGV[4], room)
  end
end
return ended
"""

_RATE_LIMIT = f"""
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', {_LUA_NUM.format("now - window")})
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {_LUA_NUM.format("tonumber(oldest[2]) + window - now")}
end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000))
return '0'
"""


class RedisRegistry:
    def __init__(
        self,
        url: str,
        ttl_seconds: float,
        *,
        timeout_seconds: float = 2.0,
        prefix: str = "kaamos:",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive")
        self.ttl_seconds = ttl_seconds
        self.timeout_seconds = timeout_seconds
        self._prefix = prefix
        self._clock = clock
        # One quick retry: the first call after Redis restarts meets a dead pooled
        # connection; the retry reconnects. Longer outages surface as RegistryUnavailable.
        self._redis = aioredis.Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=timeout_seconds,
            socket_connect_timeout=timeout_seconds,
            retry=Retry(NoBackoff(), 1),
        )
        self._create = self._redis.register_script(_CREATE)
        self._touch = self._redis.register_script(_TOUCH)
        self._delete = self._redis.register_script(_DELETE)
        self._claim = self._redis.register_script(_CLAIM)
        self._sync_rooms = self._redis.register_script(_SYNC_ROOMS)
        self._rate_limit = self._redis.register_script(_RATE_LIMIT)

    async def create(
        self, creator_user_id: CreatorId, node_id: str | None = None, max_rooms: int | None = None
    ) -> RoomRecord:
        now = self._clock()
        ttl = self.ttl_seconds
        while True:
            room_id = new_room_id()
            created = await self._call(
                self._create(
                    keys=[self._room_key(room_id), self._key("rooms"), self._placed_key(node_id)],
                    args=[
                        json.dumps(creator_user_id),
                        repr(now),
                        repr(ttl),
                        node_id or "",
                        room_id,
                        math.ceil(2 * ttl),
                        repr(now + ttl),
                        repr(now - PLACEMENT_WINDOW_SECONDS),
                        math.ceil(PLACEMENT_WINDOW_SECONDS),
                        "" if max_rooms is None else max_rooms,
                        repr(now - ttl),  # as count(): purge what is past its kept time
                    ],
                )
            )
            if created == -1:
                raise RoomCapReached(max_rooms)
            if created:  # else the id is taken (about 59 bits: almost never)
                return RoomRecord(room_id, creator_user_id, now, now, ttl, node_id)

    async def get(self, room_id: str) -> RoomRecord | None:
        fields = await self._call(self._redis.hgetall(self._room_key(room_id)))
        return self._record(room_id, fields)

    async def touch(self, room_id: str) -> None:
        await self._call(
            self._touch(
                keys=[self._room_key(room_id), self._key("rooms")],
                args=[repr(self._clock()), room_id],
            )
        )

    async def delete(self, room_id: str) -> bool:
        deleted = await self._call(
            self._delete(
                keys=[self._room_key(room_id), self._key("rooms"), self._key(f"ended:{room_id}")],
                args=[repr(self._clock()), room_id, math.ceil(TOMBSTONE_SECONDS)],
            )
        )
        return bool(deleted)

    async def count(self) -> int:
        now = self._clock()
        key = self._key("rooms")
        async with self._redis.pipeline(transaction=True) as pipe:
            # Purge what is past its kept time, then count what has not expired.
            pipe.zremrangebyscore(key, "-inf", repr(now - self.ttl_seconds))
            pipe.zcount(key, f"({now!r}", "+inf")
            _, count = await self._call(pipe.execute())
        return int(count)

    async def claim(self, room_id: str, expected: str | None, node_id: str) -> RoomRecord | None:
        now = self._clock()
        fields = await self._call(
            self._claim(
                keys=[self._room_key(room_id), self._placed_key(node_id)],
                args=[
                    expected or "",
                    node_id,
                    repr(now),
                    room_id,
                    repr(now - PLACEMENT_WINDOW_SECONDS),
                    math.ceil(PLACEMENT_WINDOW_SECONDS),
                ],
            )
        )
        return self._record(room_id, dict(zip(fields[::2], fields[1::2], strict=True)))

    async def sync_rooms(self, node_id: str, counts: dict[str, int]) -> list[str]:
        if not counts:
            return []
        now = self._clock()
        keys = [self._key("rooms")]
        args: list[str | int] = [
            node_id,
            repr(now),
            repr(self.ttl_seconds),
            repr(now + self.ttl_seconds),
            math.ceil(2 * self.ttl_seconds),
        ]
        for room_id, count in counts.items():
            keys += [self._room_key(room_id), self._key(f"ended:{room_id}")]
            args += [room_id, count]
        ended = await self._call(self._sync_rooms(keys=keys, args=args))
        return list(ended)

    async def heartbeat(self, node: NodeInfo, ttl_seconds: float) -> None:
        entry = dataclasses.replace(node, placed=0, expires_at=self._clock() + ttl_seconds)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._key("nodes"), node.node_id, json.dumps(dataclasses.asdict(entry)))
            pipe.expire(self._key("nodes"), math.ceil(_NODE_GC_SECONDS))
            await self._call(pipe.execute())

    async def nodes(self) -> list[NodeInfo]:
        now = self._clock()
        entries = await self._call(self._redis.hgetall(self._key("nodes")))
        nodes: list[NodeInfo] = []
        long_dead: list[str] = []
        for node_id, raw in entries.items():
            entry = json.loads(raw)
            # Fields only a newer version writes are skipped, so versions can mix in a cluster.
            node = NodeInfo(**{k: v for k, v in entry.items() if k in _NODE_FIELDS})
            if node.expires_at > now:
                nodes.append(node)
            elif node.expires_at <= now - _NODE_GC_SECONDS:
                long_dead.append(node_id)
        async with self._redis.pipeline(transaction=False) as pipe:
            for node in nodes:
                pipe.zcount(
                    self._placed_key(node.node_id), f"({now - PLACEMENT_WINDOW_SECONDS!r}", "+inf"
                )
            if long_dead:
                pipe.hdel(self._key("nodes"), *long_dead)
            placed = await self._call(pipe.execute())
        for node, count in zip(nodes, placed, strict=False):
            node.placed = int(count)
        return nodes

    async def remove_node(self, node_id: str) -> None:
        await self._call(self._redis.hdel(self._key("nodes"), node_id))

    async def rate_limit(self, key: str, limit: int, window_seconds: float) -> float:
        now = self._clock()
        wait = await self._call(
            self._rate_limit(
                keys=[self._key(f"rate:{key}")],
                args=[repr(now), limit, repr(window_seconds), f"{now!r}:{secrets.token_hex(4)}"],
            )
        )
        return max(0.0, float(wait))

    async def ping(self) -> None:
        await self._call(self._redis.ping())

    async def close(self) -> None:
        await self._redis.aclose()

    # Helpers

    def _key(self, name: str) -> str:
        return f"{self._prefix}{name}"

    def _room_key(self, room_id: str) -> str:
        return self._key(f"room:{room_id}")

    def _placed_key(self, node_id: str | None) -> str:
        return self._key(f"placed:{node_id or ''}")

    def _record(self, room_id: str, fields: dict[str, str]) -> RoomRecord | None:
        if not fields:
            return None
        record = RoomRecord(
            room_id=room_id,
            creator_user_id=json.loads(fields["creator"]),
            created_at=float(fields["created_at"]),
            last_activity=float(fields["last_activity"]),
            ttl_seconds=float(fields["ttl"]),
            node_id=fields.get("node") or None,
            participants=int(fields.get("participants", 0)),
        )
        if self._clock() >= record.expires_at + record.ttl_seconds:
            return None  # purged: the key's own TTL removes it soon
        return record

    async def _call(self, awaitable: Awaitable[T]) -> T:
        """Await one Redis call, bounded by timeout_seconds in all (retry included)."""
        try:
            async with asyncio.timeout(self.timeout_seconds):
                return await awaitable
        except (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError) as exc:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                # redis-py can turn a cancellation into a connection error: keep it a cancel.
                raise asyncio.CancelledError from exc
            raise RegistryUnavailable(f"Redis: {exc or 'timed out'}") from exc
