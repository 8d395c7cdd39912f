"""Three SFU nodes (real processes) on loopback sharing a real redis-server: placement,
routing, media across nodes, a node killed with SIGKILL, and Redis stopped mid-call."""

from __future__ import annotations

import asyncio
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from app_support import MakeConfig
from call_support import receive_json
from cluster_support import NODE_TTL_SECONDS, Cluster, NodeProcess
from redis_support import RedisServer
from rtc_client import RtcClient
from timing import eventually, scaled

from kaamos_sfu.app import create_app
from kaamos_sfu.cluster.redis_registry import RedisRegistry
from kaamos_sfu.cluster.registry import NodeInfo
from kaamos_sfu.rtc_bridge import configure_ice
from kaamos_sfu.server import serve

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
async def cluster(redis: RedisServer, tmp_path: Path) -> AsyncIterator[Cluster]:
    configure_ice(["127.0.0.1"])  # the test's own aiortc clients gather on loopback too
    cluster = Cluster(redis, tmp_path / "nodes", 3)
    try:
        await cluster.wait_ready()
        yield cluster
    finally:
        await cluster.close()


@asynccontextmanager
async def call(
    base: NodeProcess, room_id: str, names: str = "AB", **options: object
) -> AsyncIterator[list[RtcClient]]:
    """Clients that look the room up on `base` and join it, each seeing the others' video."""
    made = [RtcClient(base.url, room_id, name, **options) for name in names]  # type: ignore[arg-type]
    try:
        for client in made:
            reply = await client.join()
            assert reply["type"] == "joined", reply
        for receiver in made:
            for sender in made:
                if sender is not receiver and sender.publish:
                    await receiver.wait_decoded((sender.peer_id, "camera"), 10, timeout=30)  # type: ignore[arg-type]
        yield made
    finally:
        await asyncio.gather(*(c.close() for c in made), return_exceptions=True)


def decoded(receiver: RtcClient, sender: RtcClient) -> int:
    return receiver.received_from(sender.peer_id or "", "camera").decoded


async def test_rooms_spread_and_every_node_agrees(cluster: Cluster) -> None:
    """Six rooms created through one node land two on each node, and GET /api/rooms/{id}
    on every node names the holder's WebSocket."""
    first = cluster.nodes[0]
    rooms = [await cluster.create_room(first) for _ in range(6)]
    holders = [await cluster.holder(room_id) for room_id in rooms]
    assert Counter(h.name for h in holders) == {"node0": 2, "node1": 2, "node2": 2}
    for room_id, holder in zip(rooms, holders, strict=True):
        for node in cluster.nodes:
            status, body = await cluster.get_room(node, room_id)
            assert status == 200, body
            assert body["signaling_url"] == f"ws://127.0.0.1:{holder.port}/ws/{room_id}"
            assert (body["participants"], body["active"]) == (0, False)

    # A page served by node0 may open its WebSocket on node1; a page of another site may not.
    page, other = cluster.nodes[0], cluster.nodes[1]

    async def upgrade_status(origin: str) -> int:
        url = f"{other.url}/ws/{rooms[0]}"
        try:
            async with cluster.http.ws_connect(url, headers={"Origin": origin}):
                return 101
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status

    assert await upgrade_status(page.url) == 101
    assert await upgrade_status("http://evil.example") == 403


async def test_room_made_on_one_node_joined_via_another_carries_media(cluster: Cluster) -> None:
    """A room created via node A is joined via node B: a client that connects to B gets
    WRONG_NODE and follows it, one that looks the room up goes straight to the holder; both
    decode each other's video, payloads unchanged, and every node counts two participants.
    Deleting the room through B ends the call on the holder."""
    a, b = cluster.nodes[0], cluster.nodes[1]
    rooms = [await cluster.create_room(a) for _ in range(3)]  # on three different nodes
    holders = [await cluster.holder(room_id) for room_id in rooms]
    room_id, holder = next((r, h) for r, h in zip(rooms, holders, strict=True) if h is not b)
    holder_ws = f"ws://127.0.0.1:{holder.port}/ws/{room_id}"
    follower = RtcClient(b.url, room_id, "F", resolve=False)  # connects to B's /ws first
    try:
        assert (await follower.join())["type"] == "joined"
        assert follower.messages[0] == {
            "type": "error",
            "code": "WRONG_NODE",
            "message": "This room is served by another node.",
            "signaling_url": holder_ws,
        }
        assert follower.ws_url == holder_ws
        async with call(b, room_id, "R") as (resolver,):
            assert resolver.ws_url == holder_ws
            await follower.wait_decoded((resolver.peer_id or "", "camera"), 10, timeout=30)
            await resolver.wait_decoded((follower.peer_id or "", "camera"), 10, timeout=30)
            for receiver, sender in ((follower, resolver), (resolver, follower)):
                payloads = receiver.received_from(sender.peer_id or "", "camera").payloads
                assert payloads and set(payloads.values()) <= sender.sent_on("camera")

            async def all_count_two() -> bool:
                answers = [await cluster.get_room(node, room_id) for node in cluster.nodes]
                return all(body["participants"] == 2 and body["active"] for _, body in answers)

            await eventually(all_count_two, 10, "every node to count two participants", poll=0.1)

            # Deleted through a node that does not hold it: the holder ends the call.
            async with cluster.http.delete(
                f"{b.url}/api/rooms/{room_id}",
                headers={"Authorization": f"Bearer {cluster.token}"},
            ) as response:
                assert response.status == 204
            for client in (follower, resolver):
                await client.wait_for(lambda m: m["type"] == "room-ended", timeout=10)
                await eventually(lambda c=client: c.close_code == 4001, 5, "close 4001")
    finally:
        await follower.close()


async def test_killed_node_leaves_and_its_room_moves(cluster: Cluster) -> None:
    """SIGKILL the node holding a call: it leaves the node set within the node ttl (plus a
    beat), the next lookup moves the room to a live node, and a rejoin carries media. The
    new holder, stopped with SIGTERM, exits promptly and leaves the node set at once."""
    room_id = await cluster.create_room(cluster.nodes[0])
    victim = await cluster.holder(room_id)
    survivors = [n for n in cluster.nodes if n is not victim]
    async with call(survivors[0], room_id) as (a, _):
        assert a.ws_url == f"ws://127.0.0.1:{victim.port}/ws/{room_id}"
        victim.kill()

        async def victim_gone() -> bool:
            return victim.name not in {n.node_id for n in await cluster.live_nodes()}

        took = await eventually(
            victim_gone, NODE_TTL_SECONDS + 5, "the killed node to leave", poll=0.1
        )
        assert took <= NODE_TTL_SECONDS + 1.5
    status, body = await cluster.get_room(survivors[1], room_id)
    assert status == 200, body
    new_holder = await cluster.holder(room_id)
    assert new_holder in survivors
    assert body["signaling_url"] == f"ws://127.0.0.1:{new_holder.port}/ws/{room_id}"
    for node in survivors:
        assert (await cluster.get_room(node, room_id))[1]["signaling_url"] == body["signaling_url"]
    async with call(survivors[0], room_id, "CD") as (c, d):
        assert c.ws_url == d.ws_url == body["signaling_url"]
        before = decoded(c, d)
        await c.wait_decoded((d.peer_id or "", "camera"), before + 30, timeout=20)
    # Stopped cleanly right after its call, a node exits promptly and leaves the set at once.
    start = time.monotonic()
    new_holder.process.terminate()
    new_holder.process.wait(scaled(10))
    assert new_holder.name not in {n.node_id for n in await cluster.live_nodes()}
    assert time.monotonic() - start < min(5.0, NODE_TTL_SECONDS * 2)


async def test_redis_down_keeps_media_and_recovers(cluster: Cluster) -> None:
    """Redis stops mid-call: the call's media keeps flowing, the API answers 503
    REGISTRY_UNAVAILABLE, a join to the room live on its node still works; Redis restarts
    (empty) and every node creates rooms again, with no node restarted."""
    first = cluster.nodes[0]
    room_id = await cluster.create_room(first)
    holder = await cluster.holder(room_id)
    async with call(first, room_id) as (a, b):
        cluster.redis.stop()
        before = decoded(a, b)
        for node in cluster.nodes:
            status, body = await cluster.get_room(node, room_id)
            assert status == 503 and body["error"]["code"] == "REGISTRY_UNAVAILABLE", body
            async with cluster.http.post(
                f"{node.url}/api/rooms/create",
                headers={"Authorization": f"Bearer {cluster.token}"},
            ) as response:
                assert response.status == 503
                assert (await response.json())["error"]["code"] == "REGISTRY_UNAVAILABLE"
                assert response.headers["Retry-After"] == "5"
        viewer = RtcClient(holder.url, room_id, "V", publish=(), resolve=False)
        try:
            assert (await viewer.join())["type"] == "joined"
            await viewer.wait_decoded((b.peer_id or "", "camera"), 10, timeout=30)
        finally:
            await viewer.close()
        elsewhere = next(n for n in cluster.nodes if n is not holder)
        refused = RtcClient(elsewhere.url, room_id, "X", publish=(), resolve=False)
        try:
            reply = await refused.join()
            assert reply["code"] == "REGISTRY_UNAVAILABLE"
            await eventually(lambda: refused.close_code is not None, 5, "close")
            assert refused.close_code == 1013
        finally:
            await refused.close()
        await a.wait_decoded((b.peer_id or "", "camera"), before + 60, timeout=20)

        cluster.redis.start()

        async def every_node_creates() -> bool:
            for node in cluster.nodes:
                async with cluster.http.post(
                    f"{node.url}/api/rooms/create",
                    headers={"Authorization": f"Bearer {cluster.token}"},
                ) as response:
                    if response.status != 201:
                        return False
            return True

        await eventually(every_node_creates, 15, "every node to create rooms again", poll=0.1)
        # The live call's record, lost with Redis, is back from its node's next heartbeat.

        async def record_back() -> bool:
            return (await cluster.get_room(elsewhere, room_id))[0] == 200

        await eventually(record_back, 5, "the live room's record to come back", poll=0.1)
        status, body = await cluster.get_room(elsewhere, room_id)
        assert body["participants"] == 2, body
        assert body["signaling_url"] == f"ws://127.0.0.1:{holder.port}/ws/{room_id}"
    fresh = await cluster.create_room(cluster.nodes[1])
    async with call(cluster.nodes[2], fresh, "EF") as (e, f):
        await e.wait_decoded((f.peer_id or "", "camera"), decoded(e, f) + 10, timeout=20)


async def test_draining_node_takes_no_new_rooms_and_keeps_its_call(
    redis: RedisServer, tmp_path: Path
) -> None:
    """SIGTERM a node holding a call (two nodes, a long drain): its entry says draining at
    once, rooms created meanwhile all go to the other node, and its own room still routes to
    it while the call goes on. When its last peer leaves it stops, and the room moves."""
    cluster = Cluster(
        redis,
        tmp_path / "nodes",
        2,
        KAAMOS_SERVER_DRAIN_SECONDS="60",
        KAAMOS_API_ROOMS_PER_MINUTE_PER_TOKEN="100",
    )
    try:
        await cluster.wait_ready()
        victim, survivor = cluster.nodes
        for _ in range(20):  # placement draws ties at random
            room_id = await cluster.create_room(victim)
            if await cluster.holder(room_id) is victim:
                break
        victim_ws = f"ws://127.0.0.1:{victim.port}/ws/{room_id}"
        async with cluster.http.ws_connect(victim_ws) as peer:
            await peer.send_json({"type": "join", "name": "A", "publish": []})
            assert (await receive_json(peer, 10))["type"] == "joined"
            victim.process.terminate()
            assert (await receive_json(peer, 10))["type"] == "server-shutdown"

            async def victim_draining() -> bool:
                return victim.name in {n.node_id for n in await cluster.live_nodes() if n.draining}

            await eventually(victim_draining, 5, "the victim's entry to say draining", poll=0.1)
            new_rooms = [await cluster.create_room(survivor) for _ in range(8)]
            assert {(await cluster.holder(r)).name for r in new_rooms} == {survivor.name}
            status, body = await cluster.get_room(survivor, room_id)
            assert (status, body["signaling_url"]) == (200, victim_ws)
            assert victim.process.poll() is None
        victim.process.wait(scaled(15))  # its last peer left: the drain ends
        status, body = await cluster.get_room(survivor, room_id)
        assert status == 200, body
        assert body["signaling_url"] == f"ws://127.0.0.1:{survivor.port}/ws/{room_id}"
    finally:
        await cluster.close()


async def test_a_node_that_cannot_listen_never_joins(
    make_config: MakeConfig, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node whose port is taken fails before it registers: no other node ever sees it
    in the node set, so none places a room on it."""
    beats: list[str] = []
    heartbeat = RedisRegistry.heartbeat

    async def counted(self: RedisRegistry, node: NodeInfo, ttl_seconds: float) -> None:
        beats.append(node.node_id)
        await heartbeat(self, node, ttl_seconds)

    monkeypatch.setattr(RedisRegistry, "heartbeat", counted)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        config = make_config(
            server={"host": "127.0.0.1", "port": taken.getsockname()[1]},
            cluster={"redis_url": redis_url, "node_id": "late"},
        )
        with pytest.raises(OSError):
            await serve(create_app(config), config)
    assert beats == []
