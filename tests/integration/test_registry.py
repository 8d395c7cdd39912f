"""The RoomRegistry contract, run against both implementations: in-memory and Redis.

Both take their time from the same fake clock: the Redis registry stores timestamps from it
and decides every expiry from them (its key TTLs only collect garbage), so one clock drives
both through the same expectations.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from fake_clock import FakeClock

from kaamos_sfu.cluster import memory_registry, redis_registry
from kaamos_sfu.cluster.memory_registry import MemoryRegistry
from kaamos_sfu.cluster.redis_registry import RedisRegistry
from kaamos_sfu.cluster.registry import (
    PLACEMENT_WINDOW_SECONDS,
    NodeInfo,
    RegistryUnavailable,
    RoomCapReached,
    RoomRegistry,
    is_valid_room_id,
)

TTL = 100.0


def make_registry(kind: str, clock: FakeClock, redis_url: str) -> RoomRegistry:
    if kind == "memory":
        return MemoryRegistry(ttl_seconds=TTL, clock=clock)
    return RedisRegistry(redis_url, ttl_seconds=TTL, clock=clock)


@pytest.fixture(params=["memory", "redis"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def redis_url_if_needed(kind: str, request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue("redis_url")) if kind == "redis" else ""


@pytest.fixture
async def registry(
    kind: str, clock: FakeClock, redis_url_if_needed: str
) -> AsyncIterator[RoomRegistry]:
    registry = make_registry(kind, clock, redis_url_if_needed)
    yield registry
    await registry.close()


async def test_create_makes_unique_valid_records(registry: RoomRegistry, clock: FakeClock) -> None:
    """create returns a record with a fresh valid id, the creator and times from the clock."""
    records = [await registry.create(i) for i in range(50)]
    assert len({r.room_id for r in records}) == 50
    assert all(is_valid_room_id(r.room_id) for r in records)
    first = records[0]
    assert first.creator_user_id == 0
    assert first.created_at == first.last_activity == clock.now
    assert first.expires_at == clock.now + TTL
    assert await registry.count() == 50


async def test_get_returns_a_copy(registry: RoomRegistry) -> None:
    """Changing a returned record does not change the stored one."""
    record = await registry.create("alice")
    fetched = await registry.get(record.room_id)
    assert fetched == record
    assert fetched is not None
    fetched.last_activity = 0
    assert await registry.get(record.room_id) == record


async def test_expired_room_is_kept_one_more_ttl(registry: RoomRegistry, clock: FakeClock) -> None:
    """An expired room is still returned (marked expired) until one more ttl has passed."""
    record = await registry.create(None)
    clock.now += TTL
    expired = await registry.get(record.room_id)
    assert expired is not None and expired.expired(clock.now)
    assert await registry.count() == 0
    clock.now += TTL - 1
    assert await registry.get(record.room_id) is not None
    clock.now += 1
    assert await registry.get(record.room_id) is None
    assert await registry.delete(record.room_id) is False


async def test_touch_moves_expiry(registry: RoomRegistry, clock: FakeClock) -> None:
    """touch moves a live room's expiry to now + ttl."""
    record = await registry.create(None)
    clock.now += TTL - 1
    await registry.touch(record.room_id)
    clock.now += TTL - 1
    touched = await registry.get(record.room_id)
    assert touched is not None and not touched.expired(clock.now)
    assert touched.expires_at == clock.now + 1
    assert await registry.count() == 1


async def test_touch_extends_expired_but_kept_room(
    registry: RoomRegistry, clock: FakeClock
) -> None:
    """touch extends an expired room that is still kept, but never brings back a purged one."""
    kept = await registry.create(None)
    clock.now += TTL
    await registry.touch(kept.room_id)
    touched = await registry.get(kept.room_id)
    assert touched is not None and not touched.expired(clock.now)
    clock.now += 2 * TTL
    await registry.touch(kept.room_id)
    await registry.touch("AbCdEf1234")
    assert await registry.get(kept.room_id) is None
    assert await registry.get("AbCdEf1234") is None


async def test_delete(registry: RoomRegistry) -> None:
    """delete removes a room and says whether it existed."""
    record = await registry.create(None)
    assert await registry.delete(record.room_id) is True
    assert await registry.get(record.room_id) is None
    assert await registry.delete(record.room_id) is False
    assert await registry.count() == 0


async def test_count_counts_only_unexpired(registry: RoomRegistry, clock: FakeClock) -> None:
    """count skips expired rooms that are still kept."""
    await registry.create(None)
    clock.now += TTL / 2
    await registry.create(None)
    clock.now += TTL / 2
    assert await registry.count() == 1


async def test_create_refuses_beyond_max_rooms(registry: RoomRegistry, clock: FakeClock) -> None:
    """create(max_rooms=N) raises RoomCapReached once N rooms exist; expired and deleted
    rooms do not count, and create without max_rooms is never refused."""
    first = await registry.create(None, "a", max_rooms=2)
    await registry.create(None, "a", max_rooms=2)
    with pytest.raises(RoomCapReached):
        await registry.create(None, "a", max_rooms=2)
    assert await registry.count() == 2
    await registry.delete(first.room_id)
    await registry.create(None, "a", max_rooms=2)
    await registry.create(None)  # no cap given
    clock.now += TTL  # all three expire (kept to answer "expired", but not counted)
    assert [await registry.create(None, max_rooms=2) for _ in range(2)]
    with pytest.raises(RoomCapReached):
        await registry.create(None, max_rooms=2)


@pytest.fixture
def colliding_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    ids = iter(["AAAAAAAAAA", "AAAAAAAAAA", "BBBBBBBBBB"])
    monkeypatch.setattr(memory_registry, "new_room_id", lambda: next(ids))
    monkeypatch.setattr(redis_registry, "new_room_id", lambda: next(ids))


async def test_create_retries_on_collision(registry: RoomRegistry, colliding_ids: None) -> None:
    """An id that is already taken is drawn again instead of overwriting a room."""
    first = await registry.create("a")
    second = await registry.create("b")
    assert (first.room_id, second.room_id) == ("AAAAAAAAAA", "BBBBBBBBBB")
    assert (await registry.get("AAAAAAAAAA")).creator_user_id == "a"  # type: ignore[union-attr]


async def test_purged_id_can_be_drawn_again(
    registry: RoomRegistry, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once a room is purged its id is free: a new room with it starts fresh."""
    for module in (memory_registry, redis_registry):
        monkeypatch.setattr(module, "new_room_id", lambda: "AAAAAAAAAA")
    await registry.create("old", "n1")
    clock.now += 2 * TTL
    record = await registry.create("new")
    assert record.room_id == "AAAAAAAAAA"
    assert await registry.get("AAAAAAAAAA") == record
    assert record.node_id is None and record.creator_user_id == "new"


async def test_creator_ids_round_trip(registry: RoomRegistry) -> None:
    """Integer, string and absent creator ids come back as they went in."""
    for creator in (2**63 - 1, -5, "alice", "42", None):
        record = await registry.create(creator)
        fetched = await registry.get(record.room_id)
        assert fetched is not None and fetched.creator_user_id == creator


async def test_close_forgets_rooms(clock: FakeClock) -> None:
    """close releases everything; the in-memory registry is empty afterwards."""
    registry = MemoryRegistry(ttl_seconds=TTL, clock=clock)
    record = await registry.create(None)
    await registry.close()
    assert await registry.get(record.room_id) is None


async def test_rate_limit_sliding_window(registry: RoomRegistry, clock: FakeClock) -> None:
    """`limit` events pass per window; the next waits until the oldest leaves the window."""
    assert [await registry.rate_limit("k", 3, 60) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert await registry.rate_limit("k", 3, 60) == pytest.approx(60)
    assert await registry.rate_limit("other", 3, 60) == 0.0  # keys are independent
    clock.now += 45
    assert await registry.rate_limit("k", 3, 60) == pytest.approx(15)  # refusals do not count
    clock.now += 15
    assert await registry.rate_limit("k", 3, 60) == 0.0
    assert await registry.rate_limit("k", 3, 60) == 0.0
    assert await registry.rate_limit("k", 3, 60) == 0.0
    assert await registry.rate_limit("k", 3, 60) == pytest.approx(60)


async def test_rate_limit_keys_with_odd_characters(registry: RoomRegistry) -> None:
    """Keys are opaque: colons, spaces and unicode are distinct keys."""
    assert await registry.rate_limit("ip:1.2.3.4 x", 1, 60) == 0.0
    assert await registry.rate_limit("ip:1.2.3.4 x", 1, 60) > 0
    assert await registry.rate_limit("ip:1.2.3.4 y", 1, 60) == 0.0
    assert await registry.rate_limit("пользователь", 1, 60) == 0.0


# Nodes and placement


def node(node_id: str, **fields: int) -> NodeInfo:
    return NodeInfo(node_id, f"http://{node_id}", f"ws://{node_id}", capacity=10, **fields)


async def test_nodes_live_for_their_ttl(registry: RoomRegistry, clock: FakeClock) -> None:
    """A node is listed until its ttl runs out without a heartbeat, and again once it beats."""
    await registry.heartbeat(node("a", rooms=2, peers=5), ttl_seconds=6)
    await registry.heartbeat(NodeInfo("b", "http://b", "ws://b", 10, draining=True), 6)
    listed = {n.node_id: n for n in await registry.nodes()}
    assert set(listed) == {"a", "b"}
    assert (listed["a"].rooms, listed["a"].peers, listed["a"].url) == (2, 5, "http://a")
    assert (listed["a"].draining, listed["b"].draining) == (False, True)
    assert listed["a"].expires_at == clock.now + 6
    clock.now += 5
    await registry.heartbeat(node("b"), ttl_seconds=6)
    clock.now += 1
    assert [n.node_id for n in await registry.nodes()] == ["b"]
    await registry.heartbeat(node("a"), ttl_seconds=6)
    assert {n.node_id for n in await registry.nodes()} == {"a", "b"}
    await registry.remove_node("a")
    assert [n.node_id for n in await registry.nodes()] == ["b"]


async def test_placements_count_for_a_window(registry: RoomRegistry, clock: FakeClock) -> None:
    """Rooms created on a node count in its `placed` for PLACEMENT_WINDOW_SECONDS."""
    await registry.heartbeat(node("a"), ttl_seconds=10 * PLACEMENT_WINDOW_SECONDS)
    record = await registry.create(None, "a")
    assert record.node_id == "a"
    assert (await registry.get(record.room_id)).node_id == "a"  # type: ignore[union-attr]
    await registry.create(None, "a")
    await registry.create(None, "elsewhere")
    assert [n.placed for n in await registry.nodes()] == [2]
    clock.now += PLACEMENT_WINDOW_SECONDS
    assert [n.placed for n in await registry.nodes()] == [0]


async def test_claim_moves_a_room_only_from_the_expected_node(registry: RoomRegistry) -> None:
    """claim is compare-and-set on the holder: of two claims of a dead node's room, the
    first wins and the second gets the winner's record."""
    record = await registry.create(None, "dead")
    await registry.sync_rooms("dead", {record.room_id: 3})
    first = await registry.claim(record.room_id, "dead", "b")
    second = await registry.claim(record.room_id, "dead", "c")
    assert first is not None and second is not None
    assert first.node_id == second.node_id == "b"
    assert first.participants == 0  # nobody has joined it on b yet
    assert (await registry.get(record.room_id)).node_id == "b"  # type: ignore[union-attr]
    assert await registry.claim("AbCdEf1234", None, "b") is None
    unplaced = await registry.create(None)
    claimed = await registry.claim(unplaced.room_id, None, "c")
    assert claimed is not None and claimed.node_id == "c"


async def test_sync_rooms_publishes_counts(registry: RoomRegistry) -> None:
    """sync_rooms stores each live room's peer count in its record."""
    one = await registry.create(None, "a")
    two = await registry.create(None, "a")
    assert await registry.sync_rooms("a", {one.room_id: 2, two.room_id: 0}) == []
    assert (await registry.get(one.room_id)).participants == 2  # type: ignore[union-attr]
    assert (await registry.get(two.room_id)).participants == 0  # type: ignore[union-attr]


async def test_sync_rooms_leaves_rooms_held_elsewhere(registry: RoomRegistry) -> None:
    """A node's count of a room that has moved to another node changes nothing."""
    record = await registry.create(None, "b")
    await registry.sync_rooms("b", {record.room_id: 2})
    assert await registry.sync_rooms("a", {record.room_id: 1}) == []
    kept = await registry.get(record.room_id)
    assert kept is not None and (kept.node_id, kept.participants) == ("b", 2)


async def test_sync_rooms_reports_deleted_rooms(registry: RoomRegistry) -> None:
    """A live room deleted (through any node) comes back from sync_rooms so its call ends,
    and is not recreated."""
    record = await registry.create(None, "a")
    assert await registry.delete(record.room_id)
    assert await registry.sync_rooms("a", {record.room_id: 2}) == [record.room_id]
    assert await registry.get(record.room_id) is None


async def test_sync_rooms_recreates_lost_live_rooms(
    registry: RoomRegistry, clock: FakeClock
) -> None:
    """A room live on a node whose record is missing without having been deleted (Redis
    lost its data) is recreated on that node; an empty one is not."""
    assert await registry.sync_rooms("a", {"AbCdEf1234": 2, "ZyXwVu9876": 0}) == []
    record = await registry.get("AbCdEf1234")
    assert record is not None
    assert (record.node_id, record.participants, record.creator_user_id) == ("a", 2, None)
    assert record.last_activity == clock.now and not record.expired(clock.now)
    assert await registry.get("ZyXwVu9876") is None
    assert await registry.count() == 1


# Redis only: what makes it a shared registry


async def test_redis_registries_share_everything(clock: FakeClock, redis_url: str) -> None:
    """Two nodes' registries on one Redis see the same rooms, count, nodes and rate limits."""
    one, two = (RedisRegistry(redis_url, ttl_seconds=TTL, clock=clock) for _ in range(2))
    try:
        record = await one.create("bot", "a")
        assert await two.get(record.room_id) == record
        await two.touch(record.room_id)
        assert await one.count() == await two.count() == 1
        await one.heartbeat(node("a"), 6)
        assert [n.node_id for n in await two.nodes()] == ["a"]
        assert await one.rate_limit("k", 1, 60) == 0.0
        assert await two.rate_limit("k", 1, 60) == pytest.approx(60)
        assert await two.delete(record.room_id) is True
        assert await one.get(record.room_id) is None
    finally:
        await one.close()
        await two.close()


async def test_redis_max_rooms_holds_for_concurrent_creates(
    clock: FakeClock, redis_url: str
) -> None:
    """Forty creates at once through four registries (four nodes) with max_rooms=5: exactly
    five rooms exist, the others are refused."""
    registries = [RedisRegistry(redis_url, ttl_seconds=TTL, clock=clock) for _ in range(4)]
    try:
        results = await asyncio.gather(
            *(registries[i % 4].create(None, "a", max_rooms=5) for i in range(40)),
            return_exceptions=True,
        )
        assert sum(not isinstance(r, BaseException) for r in results) == 5
        assert all(isinstance(r, RoomCapReached) for r in results if isinstance(r, BaseException))
        assert await registries[0].count() == 5
    finally:
        for registry in registries:
            await registry.close()


async def test_redis_node_entries_from_a_newer_version_are_read(
    clock: FakeClock, redis_server, redis_url: str
) -> None:
    """A node entry with a field this version does not know (a newer node in a rolling
    upgrade) is still listed."""
    registry = RedisRegistry(redis_url, ttl_seconds=TTL, clock=clock)
    try:
        await registry.heartbeat(node("a"), 6)
        redis_server.command(
            "HSET",
            "kaamos:nodes",
            "b",
            '\'{"node_id": "b", "url": "http://b", "signaling_url": "ws://b", "capacity": 1, '
            f'"expires_at": {clock.now + 6}, "future": 1}}\'',
        )
        assert {n.node_id for n in await registry.nodes()} == {"a", "b"}
    finally:
        await registry.close()


async def test_redis_keys_carry_ttls(clock: FakeClock, redis_server, redis_url: str) -> None:
    """Every key the registry writes has a TTL, so nothing outlives its use in Redis."""
    registry = RedisRegistry(redis_url, ttl_seconds=TTL, clock=clock)
    try:
        record = await registry.create(None, "a")
        await registry.heartbeat(node("a"), 6)
        await registry.rate_limit("k", 3, 60)
        other = await registry.create(None, "a")
        await registry.delete(other.room_id)
        keys = redis_server.command("KEYS", "*").decode().split("\r\n")
        names = [k for k in keys if k.startswith("kaamos:")]
        assert {n.split(":")[1] for n in names} == {
            "room",
            "rooms",
            "nodes",
            "placed",
            "rate",
            "ended",
        }
        for name in names:
            if name != "kaamos:rooms":  # the index of live rooms: trimmed by count()
                ttl = int(redis_server.command("TTL", name).decode().strip(":\r\n"))
                assert ttl > 0, name
        assert f"kaamos:room:{record.room_id}" in names
    finally:
        await registry.close()


async def test_redis_unreachable_raises_registry_unavailable(clock: FakeClock) -> None:
    """Every call to an unreachable Redis fails quickly with RegistryUnavailable."""
    from ports import free_port

    registry = RedisRegistry(
        f"redis://127.0.0.1:{free_port()}/0", ttl_seconds=TTL, timeout_seconds=1, clock=clock
    )
    try:
        for call in (
            registry.create(None, "a"),
            registry.get("AbCdEf1234"),
            registry.count(),
            registry.nodes(),
            registry.heartbeat(node("a"), 6),
            registry.rate_limit("k", 1, 1),
            registry.claim("AbCdEf1234", None, "a"),
            registry.sync_rooms("a", {"AbCdEf1234": 1}),
        ):
            with pytest.raises(RegistryUnavailable):
                await call
    finally:
        await registry.close()


async def test_redis_hung_then_back(clock: FakeClock, tmp_path) -> None:
    """A Redis that stops answering fails each call within timeout_seconds; the same
    registry works again once Redis answers, with no reconnect by hand."""
    import signal
    import time

    from redis_support import RedisServer

    server = RedisServer(tmp_path / "redis")
    server.start()
    registry = RedisRegistry(server.url, ttl_seconds=TTL, timeout_seconds=0.5, clock=clock)
    try:
        record = await registry.create(None, "a")
        assert server.process is not None
        server.process.send_signal(signal.SIGSTOP)
        try:
            start = time.monotonic()
            with pytest.raises(RegistryUnavailable):
                await registry.get(record.room_id)
            assert time.monotonic() - start < 1.5
        finally:
            server.process.send_signal(signal.SIGCONT)
        assert await registry.get(record.room_id) == record
    finally:
        await registry.close()
        server.stop()
