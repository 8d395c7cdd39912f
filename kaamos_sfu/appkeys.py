"""Typed keys for everything stored on the aiohttp application."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from .config import Config
from .lifecycle import Lifecycle

if TYPE_CHECKING:
    from .cluster.node import Node
    from .cluster.registry import RoomRegistry
    from .room import RoomManager
    from .web.edge import Edge
    from .web.metrics import Metrics

CONFIG = web.AppKey("config", Config)
API_SECRET = web.AppKey("api_secret", str)
LIFECYCLE = web.AppKey("lifecycle", Lifecycle)
REGISTRY: web.AppKey[RoomRegistry] = web.AppKey("registry")
ROOMS: web.AppKey[RoomManager] = web.AppKey("rooms")
EDGE: web.AppKey[Edge] = web.AppKey("edge")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
NODE: web.AppKey[Node] = web.AppKey("node")
