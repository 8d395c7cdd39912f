"""The aiohttp application factory: wires config, registry, rooms, HTTP API and signaling."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from . import signaling
from .appkeys import API_SECRET, CONFIG, EDGE, LIFECYCLE, NODE, REGISTRY, ROOMS
from .cluster.memory_registry import MemoryRegistry
from .cluster.node import Node
from .cluster.registry import RoomRegistry
from .config import Config, ConfigError
from .ice.addresses import AnnouncedAddresses, PortRange, interface_addresses
from .lifecycle import Lifecycle
from .preflight import check_files
from .room import RoomManager
from .rtc_bridge import HostCandidatePlan, configure_ice
from .web import api, metrics_route, pages
from .web.auth import load_or_create_secret
from .web.edge import Edge


def create_app(config: Config) -> web.Application:
    # The WebSocket layer refuses frames above 1 MiB (close 1009); smaller frames above
    # signaling.max_message_bytes get a BAD_MESSAGE reply instead (docs/protocol.md).
    app = web.Application(client_max_size=1024 * 1024)
    check_files(config)
    app[CONFIG] = config
    app[API_SECRET] = load_or_create_secret(config)
    _configure_ice(config)
    app[LIFECYCLE] = Lifecycle()
    app.cleanup_ctx.append(_registry_and_rooms)
    app.on_startup.append(_ready)  # after the cleanup contexts, which aiohttp runs first
    app.on_shutdown.append(_close_peers)
    app[EDGE] = Edge(config)
    app.middlewares.append(app[EDGE].middleware())  # outermost: CORS headers on errors too
    api.add_routes(app)
    signaling.add_routes(app)
    metrics_route.add_routes(app)  # after _registry_and_rooms: its cleanup context needs ROOMS
    pages.add_routes(app)
    return app


def _configure_ice(config: Config) -> None:
    ice = config.ice
    try:
        from_interfaces = interface_addresses(ice.interfaces)
    except ValueError as exc:
        raise ConfigError(f"ice.interfaces: {exc}") from None
    plan = HostCandidatePlan(
        ports=PortRange(ice.port_min, ice.port_max),
        announced=AnnouncedAddresses.parse(ice.announced_addresses),
    )
    configure_ice([*ice.host_addresses, *from_interfaces], plan)


def make_registry(config: Config) -> RoomRegistry:
    """Redis when cluster.redis_url is set (shared by every node), else in this process,
    its rooms kept in state_dir so that they outlive a restart or a crash."""
    ttl = config.rooms.expire_after_hours * 3600
    if not config.cluster.redis_url:
        return MemoryRegistry(ttl_seconds=ttl, state_dir=Path(config.server.state_dir))
    from .cluster.redis_registry import RedisRegistry  # only clusters load redis-py

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


async def _ready(app: web.Application) -> None:
    app[LIFECYCLE].ready()


async def _close_peers(app: web.Application) -> None:
    await app[ROOMS].close()
