"""The aiohttp application factory: wires config, registry, rooms, HTTP API and signaling."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from . import api, pages, signaling
from .appkeys import API_SECRET, CONFIG, NODE, REGISTRY, ROOMS
from .auth import load_or_create_secret
from .cluster import Node
from .config import Config
from .memory_registry import MemoryRegistry
from .registry import RoomRegistry
from .rooms import RoomManager
from .rtc_bridge import configure_ice


def create_app(config: Config) -> web.Application:
    # The WebSocket layer refuses frames above 1 MiB (close 1009); smaller frames above
    # signaling.max_message_bytes get a BAD_MESSAGE reply instead (docs/protocol.md).
    app = web.Application(client_max_size=1024 * 1024)
    app[CONFIG] = config
    app[API_SECRET] = load_or_create_secret(config)
    configure_ice(config.ice.host_addresses)
    app.cleanup_ctx.append(_registry_and_rooms)
    app.on_shutdown.append(_close_peers)
    api.add_routes(app)
    signaling.add_routes(app)
    pages.add_routes(app)
    return app


def make_registry(config: Config) -> RoomRegistry:
    """Redis when cluster.redis_url is set (shared by every node), else in this process."""
    ttl = config.rooms.expire_after_hours * 3600
    if not config.cluster.redis_url:
        return MemoryRegistry(ttl_seconds=ttl)
    from .redis_registry import RedisRegistry  # only clusters load redis-py

    return RedisRegistry(
        config.cluster.redis_url, ttl, timeout_seconds=config.cluster.redis_timeout_seconds
    )


async def _registry_and_rooms(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    registry = make_registry(config)
    node = Node(config, registry)
    rooms = RoomManager(config, registry, node)
    app[REGISTRY], app[NODE], app[ROOMS] = registry, node, rooms
    node.start(rooms.live_counts, rooms.end_rooms_soon)
    yield
    await node.stop()
    await rooms.close()
    await registry.close()


async def _close_peers(app: web.Application) -> None:
    await app[ROOMS].close()
