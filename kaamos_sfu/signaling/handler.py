"""One signaling socket at /ws/{room_id} (docs/protocol.md): the upgrade, then frames in
and protocol messages out until it closes, and the peer's removal after.

Every upgrade is accepted so that refusals reach the browser as an `error` message with a
code, not as a bare failed connection. Pings and the join deadline are ours
(`socket_watch`), the flood guards count what comes in.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiohttp import WSMsgType, web

from .. import protocol
from ..appkeys import CONFIG, EDGE, NODE, REGISTRY, ROOMS
from ..cluster.registry import RegistryUnavailable, retry_after_seconds
from ..config import SignalingConfig
from ..protocol import BadMessage, ClientMessage, CloseCode, Error, ErrorCode
from ..room import LeaveReason
from ..web.edge import CLIENT_IP, origin_refused
from .connection import FloodGuard, WebSocketConnection
from .lingering_close import LingeringWebSocket
from .session import Session
from .socket_watch import SocketWatch, Verdict

log = logging.getLogger(__name__)

MAX_FRAME_BYTES = 1024 * 1024  # above this aiohttp closes with 1009


def add_routes(app: web.Application) -> None:
    app.router.add_get("/ws/{room_id}", websocket_handler)


async def websocket_handler(request: web.Request) -> web.StreamResponse:
    config, edge = request.app[CONFIG], request.app[EDGE]
    if not edge.websocket_origin_allowed(request, request.app[NODE].origins()):
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
