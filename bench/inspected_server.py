"""A Kaamos server the bench can look into: the real app and `serve`, plus one route,
GET /_bench/stats, which collects garbage and reports what is still alive.

    python -m bench.inspected_server --config kaamos.toml

Only the bench (and the tests that use it) start it; the product has no such route.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
from collections import Counter
from typing import Any

from aiohttp import web

from kaamos_sfu.app import create_app
from kaamos_sfu.cli import install_uvloop
from kaamos_sfu.config import Config, load_config
from kaamos_sfu.logs import setup_logging
from kaamos_sfu.server import serve

# Objects that exist once per peer or per track: after everyone leaves, none may be left.
PER_PEER_TYPES = (
    "Peer",
    "WebSocketResponse",
    "RTCPeerConnection",
    "RTCDtlsTransport",
    "RTCIceTransport",
    "MediaPath",
    "ForwardingSender",
    "ForwardingReceiver",
    "UpTrack",
    "DownTrack",
    "Room",
)


def stats() -> dict[str, Any]:
    gc.collect()
    alive = Counter(type(o).__name__ for o in gc.get_objects())
    with open("/proc/self/status") as status:
        rss_kib = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    return {
        "rss_bytes": rss_kib * 1024,
        "fds": len(os.listdir("/proc/self/fd")),
        "tasks": len(asyncio.all_tasks()),
        "objects": {name: alive[name] for name in PER_PEER_TYPES},
    }


async def stats_route(request: web.Request) -> web.Response:
    return web.json_response(stats())


async def run(config: Config) -> None:
    app = create_app(config)
    app.router.add_get("/_bench/stats", stats_route)
    await serve(app, config)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    config = load_config(parser.parse_args().config)
    setup_logging(config.log.level)
    install_uvloop()  # as `kaamos-sfu serve` does
    asyncio.run(run(config))


if __name__ == "__main__":
    main()
