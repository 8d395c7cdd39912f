"""The RoomRegistry contract, run against every implementation (in-memory for now)."""

from __future__ import annotations

import pytest

from kaamos_sfu import memory_registry
from kaamos_sfu.memory_registry import MemoryRegistry
from kaamos_sfu.registry import RoomRegistry, is_valid_room_id

TTL = 100.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["memory"])
def registry(request: pytest.FixtureRequest, clock: FakeClock) -> RoomRegistry:
    assert request.param == "memory"
    return MemoryRegistry(ttl_seconds=TTL, clock=clock)


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


@pytest.fixture
def colliding_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    ids = iter(["AAAAAAAAAA", "AAAAAAAAAA", "BBBBBBBBBB"])
    monkeypatch.setattr(memory_registry, "new_room_id", lambda: next(ids))


async def test_create_retries_on_collision(clock: FakeClock, colliding_ids: None) -> None:
    """An id that is already taken is drawn again instead of overwriting a room."""
    registry = MemoryRegistry(ttl_seconds=TTL, clock=clock)
    first = await registry.create("a")
    second = await registry.create("b")
    assert (first.room_id, second.room_id) == ("AAAAAAAAAA", "BBBBBBBBBB")
    assert (await registry.get("AAAAAAAAAA")).creator_user_id == "a"  # type: ignore[union-attr]


async def test_close_forgets_rooms(registry: RoomRegistry) -> None:
    """close releases everything; the in-memory registry is empty afterwards."""
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
