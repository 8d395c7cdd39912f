"""WebSocket signaling at /ws/{room_id}: frames in, protocol messages out (docs/protocol.md).

The handler only moves frames: parsing is in protocol.py, room commands in room/,
negotiation in peer.py. Every upgrade is accepted so that refusals reach the browser as an
`error` message with a code, not as a bare failed connection.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any

from aiohttp import WSMsgType, web

from . import protocol
from .appkeys import CONFIG, EDGE, REGISTRY, ROOMS
from .config import Config, SignalingConfig
from .edge import CLIENT_IP, origin_refused
from .lingering_close import LingeringWebSocket
from .peer import Peer
from .protocol import (
    REFUSAL_CLOSE_CODES,
    Answer,
    BadMessage,
    ClientMessage,
    CloseCode,
    Error,
    ErrorCode,
    IceCandidate,
    Join,
    Leave,
    Mute,
    Publish,
    ServerMessage,
    ServerShutdown,
    Unpublish,
    serialize,
)
from .registry import RegistryUnavailable, retry_after_seconds
from .room import JoinRefused, LeaveReason, Room, RoomManager, ServerDraining
from .socket_watch import SocketWatch, Verdict

log = logging.getLogger(__name__)

MAX_FRAME_BYTES = 1024 * 1024  # above this aiohttp closes with 1009
FLOOD_WINDOW_SECONDS = 10.0
MAX_QUEUED = 256  # messages waiting for a client that does not read them
CLOSE_FLUSH_SECONDS = 2.0


def add_routes(app: web.Application) -> None:
    app.router.add_get("/ws/{room_id}", websocket_handler)


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


class Session:
    """One client's session: awaiting join, then a peer in a room. Each message becomes a
    room command or goes to the peer's negotiation."""

    def __init__(
        self, room_id: str, manager: RoomManager, connection: WebSocketConnection, config: Config
    ) -> None:
        self.room_id = room_id
        self.manager = manager
        self.connection = connection
        self.config = config
        self.room: Room | None = None
        self.peer: Peer | None = None

    async def handle(self, message: ClientMessage) -> None:
        if self.peer is None or self.room is None:
            if not isinstance(message, Join):
                raise BadMessage("the first message must be join")
            await self._join(message)
            return
        peer, room = self.peer, self.room
        if peer.closed:
            return  # removed by the server; its socket is being closed
        if isinstance(message, Join):
            raise BadMessage("already joined")
        elif isinstance(message, Answer):
            await peer.handle_answer(message.sdp)
        elif isinstance(message, IceCandidate):
            await peer.add_ice_candidate(message)
        elif isinstance(message, Publish):
            room.publish(peer, message.source)
        elif isinstance(message, Unpublish):
            room.unpublish(peer, message.source)
        elif isinstance(message, Mute):
            room.mute(peer, message.source, message.muted)
        elif isinstance(message, Leave):
            await self.leave(LeaveReason.LEFT)

    async def _join(self, message: Join) -> None:
        peer = Peer(
            name=message.name,
            publish=message.publish,
            connection=self.connection,
            config=self.config,
        )
        try:
            self.room = await self.manager.join(self.room_id, peer)
        except JoinRefused as refusal:
            log.info("join refused", extra={"room_id": self.room_id, "code": str(refusal.code)})
            error = Error(refusal.code, refusal.message, signaling_url=refusal.signaling_url)
            self.connection.push(error)
            await self.connection.close(REFUSAL_CLOSE_CODES[refusal.code], str(refusal.code))
            return
        except ServerDraining as draining:
            self.connection.push(ServerShutdown(draining.retry_after))
            await self.connection.close(CloseCode.GOING_AWAY, "server shutting down")
            return
        self.peer = peer

    async def leave(self, reason: LeaveReason) -> None:
        if self.peer is not None and self.room is not None:
            # Shielded: aiohttp cancels the handler when the socket closes, and the peer
            # must still be removed and the others told.
            await asyncio.shield(self.manager.leave(self.room, self.peer, reason))
            self.peer = None


async def websocket_handler(request: web.Request) -> web.StreamResponse:
    config, edge = request.app[CONFIG], request.app[EDGE]
    if not edge.websocket_origin_allowed(request):
        # A page of another site: refused before the upgrade (its own page shows nothing).
        log.info("websocket origin refused", extra={"origin": request.headers.get("Origin")})
        return origin_refused(request.headers.get("Origin", ""))
    # Pings are ours (SocketWatch): aiohttp's heartbeat gives a pong half the interval and
    # no second chance, and its pongs restart receive()'s timeout.
    ws = LingeringWebSocket(autoping=False, max_msg_size=MAX_FRAME_BYTES)
    await ws.prepare(request)
    connection = WebSocketConnection(ws)
    if await _over_ip_limit(request, connection):
        connection.stop()
        return ws
    session = Session(request.match_info["room_id"], request.app[ROOMS], connection, config)
    signaling = config.signaling
    watch = SocketWatch(
        time.monotonic(),
        signaling.join_timeout_seconds,
        signaling.ping_interval_seconds,
        signaling.ping_timeout_seconds,
    )
    watchdog = asyncio.ensure_future(_watch(ws, connection, watch))
    reason = LeaveReason.SOCKET_CLOSED
    try:
        reason = await _pump(ws, session, watch, signaling)
    finally:
        watchdog.cancel()
        if connection.close_reason is not None:  # the watchdog or the writer closed it
            reason = connection.close_reason
        try:
            await session.leave(reason)
        finally:
            connection.stop()  # even when aiohttp cancels the handler during leave
    return ws


async def _pump(
    ws: LingeringWebSocket, session: Session, watch: SocketWatch, signaling: SignalingConfig
) -> LeaveReason:
    """Hand the client's frames to its session until the socket closes; return why."""
    connection = session.connection
    bad_messages = FloodGuard(signaling.max_bad_messages)
    all_messages = FloodGuard(signaling.max_messages)
    while not ws.closed:
        frame = await ws.receive()
        now = time.monotonic()
        watch.heard(now)
        if frame.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
            return LeaveReason.SOCKET_CLOSED
        if frame.type == WSMsgType.ERROR:
            log.info("websocket error", extra={"error": str(frame.data)})
            await ws.linger()  # after a frame too big to read, until the client has closed
            return LeaveReason.SOCKET_ERROR
        if frame.type == WSMsgType.PONG:
            continue
        if all_messages.record(now):
            await connection.close(CloseCode.FLOOD, "too many messages", LeaveReason.FLOOD)
            return LeaveReason.FLOOD
        if frame.type == WSMsgType.PING:
            await ws.pong(frame.data)
            continue
        try:
            await session.handle(_parse_frame(frame, signaling.max_message_bytes))
        except BadMessage as exc:
            connection.push(Error(ErrorCode.BAD_MESSAGE, str(exc)))
            if bad_messages.record(now):
                reason = LeaveReason.FLOOD
                await connection.close(CloseCode.FLOOD, "too many bad messages", reason)
                return reason
        except Exception:
            # A bug, not the client's fault: this client is let go (4500) and its peer
            # removed; the socket is not dropped without a word, and the others go on.
            log.exception("message handling failed", extra={"room_id": session.room_id})
            reason = LeaveReason.INTERNAL_ERROR
            await connection.close(CloseCode.INTERNAL_ERROR, "internal error", reason)
            return reason
        if session.peer is not None:
            watch.joined()
    return LeaveReason.SOCKET_CLOSED


async def _watch(
    ws: web.WebSocketResponse, connection: WebSocketConnection, watch: SocketWatch
) -> None:
    """Ping the client, and close a socket that sent no join in time or fell silent."""
    while not ws.closed:
        now = time.monotonic()
        step = watch.step(now)
        if step.verdict is Verdict.WAIT:
            await asyncio.sleep(step.at - now)
        elif step.verdict is Verdict.PING:
            try:
                await ws.ping()
            except ConnectionError:
                return  # the socket is gone: the handler sees it closed
        elif step.verdict is Verdict.NO_JOIN:
            await connection.close(CloseCode.TIMEOUT, "no join in time")
            return
        else:
            silent = round(now - watch.last_heard, 1)
            log.info("websocket silent", extra={"seconds": silent})
            await connection.close(CloseCode.TIMEOUT, "no answer to pings", LeaveReason.HEARTBEAT)
            return


async def _over_ip_limit(request: web.Request, connection: WebSocketConnection) -> bool:
    """Count this connection against its address's limit; over it, refuse it (RATE_LIMITED,
    4429). Without the registry (Redis down) the limit is not enforced: a rejoin to a call
    that lives on this node must still get in."""
    config = request.app[CONFIG]
    client_ip = request.get(CLIENT_IP) or request.remote or ""
    limit = config.signaling.joins_per_minute_per_ip
    try:
        wait = await request.app[REGISTRY].rate_limit(f"ws:ip:{client_ip}", limit, 60.0)
    except RegistryUnavailable:
        return False
    if wait <= 0:
        return False
    retry_after = retry_after_seconds(wait)
    request.app[ROOMS].counts.rate_limited["websocket_per_ip"] += 1
    log.info("websocket rate limited", extra={"client_ip": client_ip, "retry_after": retry_after})
    message = f"More than {limit} connections per minute from this address."
    connection.push(Error(ErrorCode.RATE_LIMITED, message, retry_after=retry_after))
    await connection.close(CloseCode.FLOOD, "rate limited")
    return True


def _parse_frame(frame: Any, max_bytes: int) -> ClientMessage:
    if frame.type != WSMsgType.TEXT:
        raise BadMessage("only JSON text frames are accepted")
    text: str = frame.data
    # Count bytes, not characters; encode only when the characters alone cannot tell.
    if len(text) > max_bytes or (len(text) * 4 > max_bytes and len(text.encode()) > max_bytes):
        raise BadMessage(f"frame larger than {max_bytes} bytes")
    return protocol.parse_client_message(text)
