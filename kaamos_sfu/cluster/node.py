"""This process as a node of the cluster: its heartbeat, room placement and routing.

A room lives on one node (docs/scaling.md). `place` picks the least-loaded live node for a
new room, skipping draining nodes; `route` says which node serves a room, moving it to a
live node when its node is dead (a draining node still serves its rooms: they move once it
has stopped). The heartbeat refreshes this node's entry and publishes its rooms' peer
counts; it is the only background Redis traffic, and the media path never waits for it.
With the in-memory registry this node is the only node, through the same code.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import secrets
import socket
from collections.abc import Callable, Iterable

from ..config import Config, origin_of
from .registry import NodeInfo, RegistryUnavailable, RoomRecord, RoomRegistry

log = logging.getLogger(__name__)

# Room id -> peers, for the rooms live on this node.
LiveCounts = Callable[[], dict[str, int]]
EndRooms = Callable[[list[str]], None]


def default_node_id(port: int) -> str:
    return f"{socket.gethostname()}-{port}-{secrets.token_hex(3)}"


def least_loaded(nodes: Iterable[NodeInfo], rng: random.Random | None = None) -> NodeInfo:
    """The node with the lowest (rooms + recently placed) / capacity, not draining unless
    every node is (the whole cluster restarts: the room moves once its node has stopped);
    ties drawn at random so that equal nodes share a burst of new rooms."""
    pick = rng or random
    return min(nodes, key=lambda n: (n.draining, (n.rooms + n.placed) / n.capacity, pick.random()))


class Node:
    def __init__(self, config: Config, registry: RoomRegistry) -> None:
        self.config = config
        self.registry = registry
        self.node_id = config.cluster.node_id or default_node_id(config.server.port)
        self._live_counts: LiveCounts = dict
        self._end_rooms: EndRooms = lambda rooms: None
        self._published: dict[str, int] = {}  # peer counts as last stored in the registry
        self._known: dict[str, NodeInfo] = {}  # live nodes as last read
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._registry_ok = True
        self._stopping = False
        self._draining = False

    @property
    def info(self) -> NodeInfo:
        counts = self._live_counts()
        return NodeInfo(
            node_id=self.node_id,
            url=self.config.node_url,
            signaling_url=self.config.signaling_url,
            capacity=self.config.cluster.capacity,
            rooms=len(counts),
            peers=sum(counts.values()),
            draining=self._draining,
        )

    def start(self, live_counts: LiveCounts, end_rooms: EndRooms) -> None:
        """Begin heartbeats; `live_counts` gives this node's rooms, `end_rooms` ends calls
        whose room was deleted through another node."""
        self._live_counts = live_counts
        self._end_rooms = end_rooms
        self._task = asyncio.ensure_future(self._heartbeats())

    async def stop(self) -> None:
        """Stop beating and leave the node set at once (best effort: Redis may be down)."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=self.config.cluster.redis_timeout_seconds)
        try:
            await asyncio.wait_for(
                self.registry.remove_node(self.node_id), self.config.cluster.redis_timeout_seconds
            )
        except (RegistryUnavailable, TimeoutError):
            pass  # the entry expires by itself after node_ttl_seconds

    async def drain(self) -> None:
        """The server is draining: say so in the node's entry now, so that no node places
        new rooms here (best effort: Redis may be down; the heartbeats retry)."""
        self._draining = True
        self._changed.set()  # and once more from the heartbeat, in case one was under way
        try:
            await asyncio.wait_for(
                self.registry.heartbeat(self.info, self.config.cluster.node_ttl_seconds),
                self.config.cluster.redis_timeout_seconds,
            )
        except (RegistryUnavailable, TimeoutError):
            pass

    def rooms_changed(self) -> None:
        """A peer joined or left: publish the counts now rather than at the next beat."""
        self._changed.set()

    def origins(self) -> set[str]:
        """The origins of this node and of every live node last seen: pages served by one
        node open WebSockets on another, so a WebSocket Origin check should allow these."""
        urls = [self.config.node_url, self.config.public_url]
        urls += [node.url for node in self._known.values()]
        return {origin_of(url) for url in urls}

    async def place(self) -> NodeInfo:
        """The node a new room should live on."""
        return least_loaded(await self._live_nodes())

    async def route(self, record: RoomRecord) -> NodeInfo:
        """The live node that serves `record`'s room, moving the room when its node is dead.

        Raises LookupError if the room disappears meanwhile."""
        if record.node_id == self.node_id:
            return self.info
        for _ in range(3):
            nodes = {node.node_id: node for node in await self._live_nodes()}
            if record.node_id in nodes:
                return nodes[record.node_id]
            target = least_loaded(nodes.values())
            claimed = await self.registry.claim(record.room_id, record.node_id, target.node_id)
            if claimed is None:
                raise LookupError(record.room_id)
            log.info(
                "room moved",
                extra={"room_id": record.room_id, "from": record.node_id, "to": claimed.node_id},
            )
            record = claimed
            if record.node_id == self.node_id:
                return self.info
        # Another node keeps moving it to nodes we do not see yet: let the client retry.
        raise RegistryUnavailable("the room's node could not be settled")

    async def _live_nodes(self) -> list[NodeInfo]:
        nodes = await self.registry.nodes()
        self._known = {node.node_id: node for node in nodes}
        # This node as it is now: alive even before its first beat lands, and draining as
        # soon as it starts to.
        placed = self._known[self.node_id].placed if self.node_id in self._known else 0
        return [n for n in nodes if n.node_id != self.node_id] + [
            dataclasses.replace(self.info, placed=placed)
        ]

    async def _heartbeats(self) -> None:
        interval = self.config.cluster.heartbeat_seconds
        while not self._stopping:  # a flag as well: a Redis client may swallow a cancel
            self._changed.clear()
            try:
                await self._beat()
            except RegistryUnavailable as exc:
                self._registry_state(False, str(exc))
            except Exception:
                log.exception("heartbeat failed")
            else:
                self._registry_state(True, "")
            try:
                async with asyncio.timeout(interval):
                    await self._changed.wait()
            except TimeoutError:
                pass

    async def _beat(self) -> None:
        await self.registry.heartbeat(self.info, self.config.cluster.node_ttl_seconds)
        counts = self._live_counts()
        # Every live room is synced each beat, so that a record lost with Redis comes back;
        # rooms that emptied since the last beat are synced once more, with 0.
        gone = {room_id: 0 for room_id in self._published if room_id not in counts}
        ended = await self.registry.sync_rooms(self.node_id, counts | gone)
        self._published = dict(counts)
        if ended:
            self._end_rooms(ended)
        await self._live_nodes()

    def _registry_state(self, ok: bool, detail: str) -> None:
        if ok != self._registry_ok:
            self._registry_ok = ok
            if ok:
                log.info("registry available again", extra={"node_id": self.node_id})
            else:
                log.warning(
                    "registry unavailable", extra={"node_id": self.node_id, "error": detail}
                )
