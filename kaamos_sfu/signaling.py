"""WebSocket signaling (DRAFT — the media core fills this in)."""

from aiohttp import web


def add_routes(app: web.Application) -> None:
    pass
