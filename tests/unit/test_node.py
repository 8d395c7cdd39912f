"""This process as a node (kaamos_sfu/cluster/node.py): placement, routing and heartbeats, over
the in-memory registry (the Redis one passes the same registry contract)."""

from __future__ import annotations

import asyncio
import random

import pytest
from app_support import MakeConfig
from timing import scaled

from kaamos_sfu.cluster.memory_registry import MemoryRegistry
from kaamos_sfu.cluster.node import Node, least_loaded, origin_of
from kaamos_sfu.cluster.registry import NodeInfo


def node(
    node_id: str, rooms: int = 0, placed: int = 0, capacity: int = 10, draining: bool = False
) -> NodeInfo:
    return NodeInfo(
        node_id,
        f"http://{node_id}:80",
        f"ws://{node_id}:80",
        capacity,
        rooms,
        0,
        placed,
        draining=draining,
    )


def test_least_loaded_weighs_rooms_and_placements_by_capacity() -> None:
    """The node with the lowest (rooms + placed) / capacity wins."""
    nodes = [node("a", rooms=3), node("b", rooms=1, placed=1), node("c", rooms=4, capacity=40)]
    assert least_loaded(nodes).node_id == "c"
    assert least_loaded(nodes[:2]).node_id == "b"


def test_least_loaded_skips_draining_nodes_unless_all_drain() -> None:
    """A draining node gets no new room while any node does not drain."""
    idle, busy = node("idle", draining=True), node("busy", rooms=9)
    assert least_loaded([idle, busy]).node_id == "busy"
    assert least_loaded([idle, node("busier", rooms=9, draining=True)]).node_id == "idle"


def test_least_loaded_draws_ties_at_random() -> None:
    """Equally loaded nodes are drawn at random, so each gets its share."""
    rng = random.Random(5)
    picks = {least_loaded([node("a"), node("b"), node("c")], rng).node_id for _ in range(50)}
    assert picks == {"a", "b", "c"}


def test_origin_of() -> None:
    """Origins as browsers send them: no path, default ports dropped."""
    assert origin_of("https://sfu.example.org/w/8081") == "https://sfu.example.org"
    assert origin_of("http://127.0.0.1:8080") == "http://127.0.0.1:8080"
    assert origin_of("https://sfu.example.org:443/") == "https://sfu.example.org"


@pytest.fixture
def registry() -> MemoryRegistry:
    return MemoryRegistry(ttl_seconds=3600)


@pytest.fixture
def here(make_config: MakeConfig, registry: MemoryRegistry) -> Node:
    config = make_config(
        server={"public_url": "https://meet.example.org"},
        cluster={"node_id": "here", "node_url": "https://here.example.org"},
    )
    return Node(config, registry)


async def test_route_to_self_and_to_a_live_node(here: Node, registry: MemoryRegistry) -> None:
    """A room on this node routes here; one on another live node routes there."""
    await registry.heartbeat(node("other"), 10)
    mine = await registry.create(None, "here")
    theirs = await registry.create(None, "other")
    assert (await here.route(mine)).signaling_url == "wss://here.example.org"
    assert (await here.route(mine)).room_signaling_url("AbCdEf1234") == (
        "wss://here.example.org/ws/AbCdEf1234"
    )
    assert (await here.route(theirs)).node_id == "other"
    assert (await registry.get(theirs.room_id)).node_id == "other"  # type: ignore[union-attr]


async def test_route_moves_a_dead_nodes_room_once(here: Node, registry: MemoryRegistry) -> None:
    """A room whose node is dead moves to a live node; routing it again, from the stale
    record, lands on the same node instead of moving it twice."""
    await registry.heartbeat(node("other", rooms=5), 10)
    stale = await registry.create(None, "dead")
    first = await here.route(stale)
    assert first.node_id == "here"  # less loaded than "other"
    await registry.heartbeat(node("third"), 10)  # now the least loaded
    assert (await here.route(stale)).node_id == "here"
    assert (await registry.get(stale.room_id)).node_id == "here"  # type: ignore[union-attr]


async def test_route_of_a_deleted_room(here: Node, registry: MemoryRegistry) -> None:
    """A room deleted while it is being routed is a LookupError (ROOM_NOT_FOUND)."""
    record = await registry.create(None, "dead")
    await registry.delete(record.room_id)
    with pytest.raises(LookupError):
        await here.route(record)


async def test_a_draining_node_says_so_and_keeps_its_rooms(
    here: Node, registry: MemoryRegistry
) -> None:
    """Once it drains, this node's entry says so at once: new rooms go elsewhere, even to
    a busier node, while its own rooms still route to it."""
    await registry.heartbeat(node("other", rooms=5), 10)
    mine = await registry.create(None, "here")
    await here.drain()
    assert {n.node_id: n.draining for n in await registry.nodes()} == {
        "here": True,
        "other": False,
    }
    assert (await here.place()).node_id == "other"
    assert (await here.route(mine)).node_id == "here"


async def test_place_counts_this_node_before_its_first_beat(here: Node) -> None:
    """With no heartbeat stored yet, this node is still a place for rooms."""
    assert (await here.place()).node_id == "here"


async def test_heartbeat_publishes_counts_and_ends_deleted_rooms(
    make_config: MakeConfig, registry: MemoryRegistry
) -> None:
    """The heartbeat registers the node with its live counts, publishes each room's peers,
    and hands back rooms deleted elsewhere; a stopped node leaves the set at once."""
    config = make_config(
        cluster={"node_id": "n", "heartbeat_seconds": 0.05, "node_ttl_seconds": 1.0}
    )
    node_ = Node(config, registry)
    live = await registry.create(None, "n")
    deleted = await registry.create(None, "n")
    await registry.delete(deleted.room_id)
    ended: list[list[str]] = []
    node_.start(lambda: {live.room_id: 3, deleted.room_id: 1}, ended.append)
    try:
        async with asyncio.timeout(scaled(5)):
            while not ended:
                await asyncio.sleep(0.01)
        assert ended[0] == [deleted.room_id]
        (entry,) = await registry.nodes()
        assert (entry.node_id, entry.rooms, entry.peers) == ("n", 2, 4)
        assert (await registry.get(live.room_id)).participants == 3  # type: ignore[union-attr]
        assert node_.origins() == {"http://localhost:8080"}
    finally:
        await node_.stop()
    assert await registry.nodes() == []


async def test_origins_include_every_live_node(here: Node, registry: MemoryRegistry) -> None:
    """origins() lists this node's, the public URL's and every live node's origin."""
    await registry.heartbeat(node("other"), 10)
    await here.place()  # reads the node set
    assert here.origins() == {
        "https://here.example.org",
        "https://meet.example.org",
        "http://other",
    }
