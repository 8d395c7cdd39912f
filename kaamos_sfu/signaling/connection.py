"""What goes back to one client: a queue drained by one writer task, so that a client that
stops reading never holds up the others, and the flood guard on what comes in."""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from aiohttp import web

from ..protocol import CloseCode, ServerMessage, serialize
from ..room import LeaveReason

log = logging.getLogger(__name__)

FLOOD_WINDOW_SECONDS = 10.0
MAX_QUEUED = 256  # messages waiting for a client that does not read them
CLOSE_FLUSH_SECONDS = 2.0


class WebSocketConnection:
    """A peer's `Connection`. `push` only queues: one writer task drains the queue, so a
    client that stops reading never holds up the room's other peers (broadcasts), and one
    that falls MAX_QUEUED messages behind is disconnected."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self._queue: asyncio.Queue[ServerMessage | None] = asyncio.Queue()
        self._closing = False
        self.close_reason: LeaveReason | None = None  # set when the server closes it
        self._writer = asyncio.ensure_future(self._write())

    def push(self, message: ServerMessage) -> None:
        if self._closing or self.ws.closed:
            return
        if self._queue.qsize() >= MAX_QUEUED:
            log.info("client not reading its messages")
            closing = self.close(CloseCode.TOO_SLOW, "not reading", LeaveReason.NOT_READING)
            asyncio.ensure_future(closing)
            return
        self._queue.put_nowait(message)

    async def close(self, code: int, reason: str, leave: LeaveReason | None = None) -> None:
        """Send what is queued (for up to CLOSE_FLUSH_SECONDS), then close with `code`;
        `leave` says why the peer leaves, when closing is how the server removes it."""
        if self._closing:
            return
        self._closing = True
        self.close_reason = leave
        self._queue.put_nowait(None)
        await asyncio.wait({self._writer}, timeout=CLOSE_FLUSH_SECONDS)
        self._writer.cancel()
        if not self.ws.closed:
            try:
                await asyncio.wait_for(
                    self.ws.close(code=code, message=reason.encode()[:120]), CLOSE_FLUSH_SECONDS
                )
            except TimeoutError:
                pass  # the heartbeat will drop a socket that cannot even take a close frame

    def stop(self) -> None:
        self._writer.cancel()

    async def _write(self) -> None:
        while (message := await self._queue.get()) is not None:
            try:
                await self.ws.send_json(serialize(message))
            except (ConnectionError, RuntimeError):
                return  # the socket went away; the handler notices and removes the peer


class FloodGuard:
    """Counts bad messages in a sliding window; a client above the limit is flooding."""

    def __init__(self, limit: int, window: float = FLOOD_WINDOW_SECONDS) -> None:
        self.limit = limit
        self.window = window
        self._times: deque[float] = deque()

    def record(self, now: float) -> bool:
        """Record one bad message; True when the client is over the limit."""
        self._times.append(now)
        while self._times and now - self._times[0] > self.window:
            self._times.popleft()
        return len(self._times) > self.limit
