"""GET /metrics: the app's Metrics (web/metrics.py) in the Prometheus text format, and the
life of its event-loop lag watcher."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..appkeys import METRICS, REGISTRY, ROOMS
from ..cluster.registry import RegistryUnavailable
from .metrics import Metrics


def add_routes(app: web.Application) -> None:
    app.router.add_get("/metrics", metrics_handler)
    app.cleanup_ctx.append(_metrics)


async def _metrics(app: web.Application) -> AsyncIterator[None]:
    metrics = app[METRICS] = Metrics(app[ROOMS])
    task = asyncio.ensure_future(metrics.watch_loop_lag())
    yield
    task.cancel()


async def metrics_handler(request: web.Request) -> web.Response:
    metrics = request.app[METRICS]
    try:
        metrics.collector.registered_rooms = await request.app[REGISTRY].count()
    except RegistryUnavailable:  # the node's own figures are what an operator needs now
        metrics.collector.registered_rooms = None
    return web.Response(
        body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )
