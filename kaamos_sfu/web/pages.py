"""The browser client's pages and static files.

`/room/{room_id}` serves the room page for any id without looking the room up: the page
learns over signaling whether the room exists, so it can show the reason in its own words.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler

from ..appkeys import CONFIG

HTML_HEADERS = {
    # The HTML names the current scripts; revalidate it so a deploy is seen at once.
    "Cache-Control": "no-cache",
    # The room URL is the only key to a call: never send it to other sites as a Referer.
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


def add_routes(app: web.Application) -> None:
    static_dir = app[CONFIG].static_dir  # preflight.check_files made sure it exists
    app.router.add_get("/", _page(static_dir / "index.html"))
    app.router.add_get("/room/{room_id}", _page(static_dir / "room.html"))
    app.router.add_static("/static/", static_dir, show_index=False, follow_symlinks=False)


def _page(path: Path) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        if not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(path, headers=HTML_HEADERS)

    return handler
