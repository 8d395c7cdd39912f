"""Typed keys for everything stored on the aiohttp application."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from .config import Config

if TYPE_CHECKING:
    from .cluster import Node
    from .registry import RoomRegistry
    from .rooms import RoomManager

CONFIG = web.AppKey("config", Config)
API_SECRET = web.AppKey("api_secret", str)
REGISTRY: web.AppKey[RoomRegistry] = web.AppKey("registry")
ROOMS: web.AppKey[RoomManager] = web.AppKey("rooms")
NODE: web.AppKey[Node] = web.AppKey("node")
