"""Rooms survive a crash: the in-memory registry keeps <state_dir>/rooms.json current (a
create or delete is on disk when the call returns, other changes within a second), and with
Redis a node killed with SIGKILL and started again finds its room there.

The SIGKILL of a single in-memory node with a call on it is in test_shutdown.py
(`test_rooms_survive_a_restart[SIGKILL]`)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cluster_support import NODE_TTL_SECONDS, START_TIMEOUT, Cluster, NodeProcess
from fake_clock import FakeClock
from redis_support import RedisServer
from rtc_client import RtcClient
from timing import eventually, scaled

from kaamos_sfu.cluster import room_snapshot
from kaamos_sfu.cluster.memory_registry import MemoryRegistry
from kaamos_sfu.cluster.registry import RoomRecord
from kaamos_sfu.rtc_bridge import configure_ice

TTL = 100.0
FAST = 0.05  # save_delay in these tests: lazy writes land quickly


def on_disk(state_dir: Path) -> dict[str, dict[str, Any]]:
    """The rooms in the file as it is now, by id."""
    data = json.loads((state_dir / room_snapshot.SNAPSHOT_FILE).read_text())
    assert data["version"] == room_snapshot.FORMAT_VERSION
    return {room["room_id"]: room for room in data["rooms"]}


def reopened(state_dir: Path, clock: FakeClock) -> MemoryRegistry:
    """A registry started from the file, as after a crash: the other one is never closed."""
    return MemoryRegistry(ttl_seconds=TTL, clock=clock, state_dir=state_dir)


async def test_a_created_room_is_on_disk_when_create_returns(
    tmp_path: Path, clock: FakeClock
) -> None:
    """create returns only once its room is in the file, and a new process finds it."""
    registry = MemoryRegistry(ttl_seconds=TTL, clock=clock, state_dir=tmp_path, save_delay=60)
    record = await registry.create("alice", node_id="n1")
    assert on_disk(tmp_path)[record.room_id] == dataclasses.asdict(record)
    assert await reopened(tmp_path, clock).get(record.room_id) == record
    assert await reopened(tmp_path, clock).get(record.room_id) == record  # read, not taken


def slow_writes(monkeypatch: pytest.MonkeyPatch, seconds: list[float]) -> None:
    """The next writes take these times (in their thread), the later ones none."""
    delays = iter(seconds)
    write = room_snapshot.write_atomically

    def slow(path: Path, data: bytes) -> None:
        time.sleep(next(delays, 0.0))
        write(path, data)

    monkeypatch.setattr(room_snapshot, "write_atomically", slow)


async def test_overlapping_creates_are_all_on_disk(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Creates made while earlier writes are still under way all reach the file: an older
    snapshot never lands over a newer one."""
    slow_writes(monkeypatch, [0.2, 0.15, 0.1, 0.05])
    registry = MemoryRegistry(ttl_seconds=TTL, clock=clock, state_dir=tmp_path)

    async def create_later(i: int) -> RoomRecord:
        await asyncio.sleep(i * 0.02)
        return await registry.create(i)

    records = await asyncio.gather(*(create_later(i) for i in range(5)))
    assert set(on_disk(tmp_path)) == {r.room_id for r in records}


async def test_a_cancelled_create_cannot_overwrite_a_later_one(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A create whose caller is cancelled mid-write (a client that went away) still
    finishes its write before the next one starts."""
    slow_writes(monkeypatch, [0.2])
    registry = MemoryRegistry(ttl_seconds=TTL, clock=clock, state_dir=tmp_path)
    first = asyncio.ensure_future(registry.create(1))
    await asyncio.sleep(0.05)  # its write is under way in a thread
    first.cancel()
    second = await registry.create(2)
    await asyncio.sleep(scaled(0.3))  # the first write has surely finished by now
    assert second.room_id in on_disk(tmp_path)
    assert len(on_disk(tmp_path)) == 2  # the cancelled create's room exists: saved too


async def test_a_deleted_room_is_gone_from_disk_when_delete_returns(
    tmp_path: Path, clock: FakeClock
) -> None:
    """After delete returns, a new process does not bring the room back; the others stay."""
    registry = MemoryRegistry(ttl_seconds=TTL, clock=clock, state_dir=tmp_path, save_delay=60)
    kept, deleted = await registry.create(1), await registry.create(2)
    assert await registry.delete(deleted.room_id)
    assert set(on_disk(tmp_path)) == {kept.room_id}
    after_crash = reopened(tmp_path, clock)
    assert await after_crash.get(deleted.room_id) is None
    assert await after_crash.get(kept.room_id) == kept


async def test_touch_claim_and_counts_land_on_disk_soon_and_in_few_writes(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Activity times, holder and peer counts are not written per call but within the save
    delay, many changes in one write."""
    writes: list[bytes] = []
    write = room_snapshot.write_atomically

    def counted(path: Path, data: bytes) -> None:
        writes.append(data)
        write(path, data)

    monkeypatch.setattr(room_snapshot, "write_atomically", counted)
    registry = MemoryRegistry(ttl_seconds=TTL, clock=clock, state_dir=tmp_path, save_delay=FAST)
    record = await registry.create(None, node_id="old")
    assert len(writes) == 1
    clock.now += 10
    for _ in range(100):  # a burst of joins and leaves
        await registry.touch(record.room_id)
    await registry.claim(record.room_id, "old", "new")
    await registry.sync_rooms("new", {record.room_id: 3})
    assert len(writes) == 1, "a lazy change was written at once"
    assert on_disk(tmp_path)[record.room_id]["last_activity"] == record.created_at
    await eventually(lambda: len(writes) > 1, 5, "the lazy write", poll=0.01)
    await asyncio.sleep(5 * FAST)
    assert len(writes) == 2
    room = on_disk(tmp_path)[record.room_id]
    assert (room["last_activity"], room["node_id"], room["participants"]) == (clock.now, "new", 3)
    # A heartbeat that changes nothing writes nothing.
    await registry.sync_rooms("new", {record.room_id: 3})
    await asyncio.sleep(5 * FAST)
    assert len(writes) == 2


async def test_close_writes_what_was_not_written_yet(tmp_path: Path, clock: FakeClock) -> None:
    """A clean stop writes pending lazy changes at once, without waiting for the delay."""
    registry = MemoryRegistry(ttl_seconds=TTL, clock=clock, state_dir=tmp_path, save_delay=60)
    record = await registry.create(None)
    clock.now += 10
    await registry.touch(record.room_id)
    await registry.close()
    assert on_disk(tmp_path)[record.room_id]["last_activity"] == clock.now
    assert await reopened(tmp_path, clock).get(record.room_id) is not None


async def test_purged_rooms_are_not_loaded(tmp_path: Path, clock: FakeClock) -> None:
    """A room past its second ttl in the file is not brought back."""
    registry = MemoryRegistry(ttl_seconds=TTL, clock=clock, state_dir=tmp_path)
    record = await registry.create(None)
    clock.now += TTL + 1  # expired, still kept: answers 410
    assert await reopened(tmp_path, clock).get(record.room_id) is not None
    clock.now += TTL
    assert await reopened(tmp_path, clock).get(record.room_id) is None


@pytest.mark.parametrize(
    "content", ["[{not json", '{"version": 99, "rooms": []}', '[{"room_id": 5}]']
)
async def test_a_damaged_file_is_skipped_and_replaced(
    tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture, content: str
) -> None:
    """A file that is not a snapshot is logged and skipped; the registry starts empty and
    writes a good file at the next create."""
    (tmp_path / room_snapshot.SNAPSHOT_FILE).write_text(content)
    with caplog.at_level(logging.WARNING):
        registry = reopened(tmp_path, clock)
    assert "room snapshot unreadable" in caplog.text
    assert await registry.count() == 0
    record = await registry.create(None)
    assert set(on_disk(tmp_path)) == {record.room_id}


async def test_a_file_of_the_previous_format_loads(tmp_path: Path, clock: FakeClock) -> None:
    """A bare list of records (written at a clean stop before this format) still loads,
    and is rewritten in the current format with its rooms."""
    old = RoomRecord("AbCdEf1234", 7, clock.now, clock.now, TTL, "node-x", 2)
    path = tmp_path / room_snapshot.SNAPSHOT_FILE
    path.write_text(json.dumps([dataclasses.asdict(old)]))
    registry = reopened(tmp_path, clock)
    assert await registry.get(old.room_id) == old
    new = await registry.create(None)
    assert set(on_disk(tmp_path)) == {old.room_id, new.room_id}


async def test_an_unwritable_state_dir_is_logged_once_and_rooms_still_work(
    tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """When the file cannot be written the error is logged once, and creates, lookups and
    deletes go on in memory."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    state_dir = blocker / "state"  # under a regular file: cannot be made, even as root
    registry = MemoryRegistry(ttl_seconds=TTL, clock=clock, state_dir=state_dir)
    with caplog.at_level(logging.ERROR):
        first, second = await registry.create(None), await registry.create(None)
    assert await registry.get(first.room_id) == first
    assert await registry.delete(second.room_id)
    errors = [r for r in caplog.records if r.message == "cannot save the room snapshot"]
    assert len(errors) == 1
    await registry.close()


# With Redis: a single node killed and started again.


async def _join(url: str, room_id: str, name: str, timeout: float) -> RtcClient:
    """A client joined to the room, retrying like the page does (with backoff) until
    `timeout` (scaled): right after a restart the dead node may still be in the node set."""
    deadline = time.monotonic() + scaled(timeout)
    while True:
        client = RtcClient(url, room_id, name)
        try:
            reply = await client.join()
        except aiohttp.ClientError as exc:
            reply = {"type": "error", "code": repr(exc)}
        if reply["type"] == "joined":
            return client
        await client.close()
        assert time.monotonic() < deadline, f"no join within {scaled(timeout):g} s: {reply}"
        await asyncio.sleep(0.5)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("same_node_id", [True, False], ids=["same-node-id", "new-node-id"])
async def test_redis_room_survives_sigkill_and_restart(
    redis: RedisServer, tmp_path: Path, same_node_id: bool
) -> None:
    """With Redis, a lone node SIGKILLed mid-call and started again on its port (with its
    configured node id, or a new one as the default id is) still has the room: the lookup
    answers 200 at once, and clients rejoin and see each other within the node ttl."""
    configure_ice(["127.0.0.1"])  # the test's own aiortc clients gather on loopback
    cluster = Cluster(redis, tmp_path / "nodes", 1)
    restarted: NodeProcess | None = None
    clients: list[RtcClient] = []
    try:
        await cluster.wait_ready()
        (node,) = cluster.nodes
        room_id = await cluster.create_room(node)
        clients = [await _join(node.url, room_id, name, 0) for name in "AB"]
        await clients[1].wait_decoded((clients[0].peer_id or "", "camera"), 3, timeout=20)
        node.kill()
        await asyncio.gather(*(c.close() for c in clients))
        new_id = node.name if same_node_id else f"{node.name}-restarted"
        restarted = NodeProcess(new_id, redis, tmp_path / "nodes", port=node.port)

        async def listening() -> bool:
            assert restarted is not None and restarted.process.poll() is None, "the node exited"
            try:
                async with cluster.http.get(f"{node.url}/health") as response:
                    return response.status == 200
            except aiohttp.ClientError:
                return False

        await eventually(listening, START_TIMEOUT, "the restarted node to come up", poll=0.1)
        status, body = await cluster.get_room(node, room_id)
        assert status == 200, body
        clients = [await _join(node.url, room_id, name, NODE_TTL_SECONDS + 10) for name in "CD"]
        c, d = clients
        await d.wait_decoded((c.peer_id or "", "camera"), 3, timeout=20)
        await c.wait_decoded((d.peer_id or "", "camera"), 3, timeout=20)
        record = await cluster.view.get(room_id)
        assert record is not None and record.node_id == new_id
    finally:
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
        if restarted is not None:
            restarted.stop()
        await cluster.close()
