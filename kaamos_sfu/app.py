"""The aiohttp application factory: wires config, registry, rooms, HTTP API and signaling."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from . import api, edge, metrics, pages, room_snapshot, signaling
from .appkeys import API_SECRET, CONFIG, EDGE, LIFECYCLE, REGISTRY, ROOMS
from .auth import load_or_create_secret
from .config import Config, ConfigError
from .ice_addresses import AnnouncedAddresses, PortRange, interface_addresses
from .lifecycle import Lifecycle
from .memory_registry import MemoryRegistry
from .preflight import check_files
from .rooms import RoomManager
from .rtc_bridge import HostCandidatePlan, configure_ice


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
    app[EDGE] = edge.Edge(config)
    app.middlewares.append(edge.middleware)  # outermost: CORS headers on errors too
    api.add_routes(app)
    signaling.add_routes(app)
    metrics.add_routes(app)  # after _registry_and_rooms: its cleanup context needs ROOMS
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


async def _registry_and_rooms(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    registry = MemoryRegistry(ttl_seconds=config.rooms.expire_after_hours * 3600)
    state_dir = Path(config.server.state_dir)
    registry.restore(room_snapshot.load(state_dir))
    app[REGISTRY] = registry
    app[ROOMS] = RoomManager(config, registry)
    yield
    await app[ROOMS].close()
    room_snapshot.save(state_dir, registry.records())
    await registry.close()


async def _ready(app: web.Application) -> None:
    app[LIFECYCLE].ready()


async def _close_peers(app: web.Application) -> None:
    await app[ROOMS].close()
