"""Run the application until a signal, then shut down without surprising callers.

SIGTERM (systemd stop, docker stop, an upgrade): /health turns 503 and new rooms and joins
are refused; every peer gets `server-shutdown` with `retry_after`; calls go on until they
end or `server.drain_seconds` pass; then every socket closes with 1001 and the process
exits 0. SIGINT (Ctrl-C) does the same without the wait, and ends a wait in progress. A
repeated SIGTERM does not: systemd's KillMode=control-group sends SIGTERM to every process
of the service, and a `--workers` supervisor passes its own on to each worker as well.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import ssl
from typing import Any

from aiohttp import web

from . import __version__
from .appkeys import LIFECYCLE, NODE, ROOMS
from .config import Config
from .logs import AccessLogger

log = logging.getLogger(__name__)

# Long enough for the writer tasks to flush server-shutdown and the close frames.
CLOSE_TIMEOUT_SECONDS = 5.0
LISTEN_BACKLOG = 128  # aiohttp's default


async def serve(
    app: web.Application,
    config: Config,
    ssl_context: ssl.SSLContext | None = None,
) -> None:
    """Serve `app` until SIGTERM or SIGINT, then drain and stop. OSError if it cannot
    listen (the port is taken, the address is not ours)."""
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log_class=AccessLogger,
        shutdown_timeout=CLOSE_TIMEOUT_SECONDS,
    )
    # Bound before the app starts, so that a node that cannot listen (its port is taken)
    # fails before it joins the cluster: no other node ever places a room on it.
    sockets = _listen(config.server.host, config.server.port)
    try:
        await runner.setup()
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    signals = _SignalWatch()
    try:
        for sock in sockets:
            await web.SockSite(runner, sock, ssl_context=ssl_context).start()
        log.info(
            "listening",
            extra={
                "host": config.server.host,
                "port": config.server.port,
                "public_url": config.public_url,
                "tls": ssl_context is not None,
                "version": __version__,
            },
        )
        first = await signals.next()
        seconds = config.server.drain_seconds if first == signal.SIGTERM else 0.0
        second = asyncio.ensure_future(signals.wait_for(signal.SIGINT))
        try:
            await drain(app, config, seconds, f"{first.name}: shutting down", cut_short=second)
        finally:
            second.cancel()
        # Before the runner's cleanup, which drops open connections without a close frame.
        await app[ROOMS].close()
    finally:
        try:
            await runner.cleanup()
        finally:
            signals.close()
    log.info("stopped")


async def drain(
    app: web.Application,
    config: Config,
    seconds: float,
    reason: str,
    cut_short: asyncio.Future[signal.Signals] | None = None,
) -> None:
    """Refuse new rooms and joins, tell the peers, and wait up to `seconds` for them to go."""
    app[LIFECYCLE].drain(reason)
    await app[NODE].drain()  # other nodes place no new rooms here from now on
    rooms = app[ROOMS]
    log.info("drain started", extra={"reason": reason, "drain_seconds": seconds})
    await rooms.begin_drain(config.server.shutdown_retry_after_seconds)
    waiting = asyncio.ensure_future(rooms.wait_until_empty(seconds))
    waits: set[asyncio.Future[Any]] = {waiting}
    if cut_short is not None:
        waits.add(cut_short)
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    waiting.cancel()
    log.info("drain ended", extra={"peers_left": rooms.peer_count})


def _listen(host: str, port: int) -> list[socket.socket]:
    """Listening TCP sockets on host:port, made as asyncio's create_server makes them (one
    per address the host resolves to; an empty host is every address)."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(LISTEN_BACKLOG)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


class _SignalWatch:
    """SIGTERM and SIGINT as awaitable events on the running loop."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[signal.Signals] = asyncio.Queue()
        for sig in self.SIGNALS:
            self._loop.add_signal_handler(sig, self._queue.put_nowait, sig)

    async def next(self) -> signal.Signals:
        return await self._queue.get()

    async def wait_for(self, wanted: signal.Signals) -> signal.Signals:
        """The next `wanted` signal; others meanwhile are logged and dropped."""
        while (got := await self._queue.get()) is not wanted:
            log.info("signal ignored: already stopping", extra={"signal": got.name})
        return got

    def close(self) -> None:
        for sig in self.SIGNALS:
            self._loop.remove_signal_handler(sig)
