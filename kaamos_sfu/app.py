"""The aiohttp application factory: wires config, registry, rooms, HTTP API and signaling."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from . import api, edge, metrics, pages, signaling
from .appkeys import API_SECRET, CONFIG, EDGE, REGISTRY, ROOMS
from .auth import load_or_create_secret
from .config import Config
from .memory_registry import MemoryRegistry
from .preflight import check_files
from .rooms import RoomManager
from .rtc_bridge import configure_ice


def create_app(config: Config) -> web.Application:
    # The WebSocket layer refuses frames above 1 MiB (close 1009); smaller frames above
    # signaling.max_message_bytes get a BAD_MESSAGE reply instead (docs/protocol.md).
    app = web.Application(client_max_size=1024 * 1024)
    check_files(config)
    app[CONFIG] = config
    app[API_SECRET] = load_or_create_secret(config)
    configure_ice(config.ice.host_addresses)
    app.cleanup_ctx.append(_registry_and_rooms)
    app.on_shutdown.append(_close_peers)
    app[EDGE] = edge.Edge(config)
    app.middlewares.append(edge.middleware)  # outermost: CORS headers on errors too
    api.add_routes(app)
    signaling.add_routes(app)
    metrics.add_routes(app)  # after _registry_and_rooms: its cleanup context needs ROOMS
    pages.add_routes(app)
    return app


async def _registry_and_rooms(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    registry = MemoryRegistry(ttl_seconds=config.rooms.expire_after_hours * 3600)
    app[REGISTRY] = registry
    app[ROOMS] = RoomManager(config, registry)
    yield
    await app[ROOMS].close()
    await registry.close()


async def _close_peers(app: web.Application) -> None:
    await app[ROOMS].close()
