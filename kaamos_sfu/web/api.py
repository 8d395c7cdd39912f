"""The JSON HTTP API: create, inspect and end rooms, and a health check.

Every error under /api/ and /health, aiohttp's own 404 and 405 and unexpected exceptions
included, is `{"error": {"code": ..., "message": ...}}`, so clients parse one shape.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from aiohttp import web

from .. import __version__
from ..appkeys import API_SECRET, CONFIG, EDGE, LIFECYCLE, NODE, REGISTRY, ROOMS
from ..cluster.registry import (
    CreatorId,
    NodeInfo,
    RegistryUnavailable,
    RoomCapReached,
    RoomRecord,
    is_valid_room_id,
    retry_after_seconds,
)
from .auth import Unauthorized, verify_bearer

log = logging.getLogger(__name__)

MAX_CREATOR_ID_LENGTH = 64
# Creator ids are stored and sent back as JSON numbers; keep them within a signed 64-bit
# integer so that every store and client can hold them.
MAX_CREATOR_ID_INT = 2**63 - 1
RATE_WINDOW_SECONDS = 60.0  # the "per minute" of api.rooms_per_minute_*
# Seconds a client should wait before retrying when the registry (Redis) is unreachable.
REGISTRY_RETRY_AFTER = 5

# Codes for errors raised by aiohttp itself rather than by our handlers.
_HTTP_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    403: "FORBIDDEN",
    413: "PAYLOAD_TOO_LARGE",
}


class ApiError(Exception):
    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def rfc3339(ts: float) -> str:
    """Unix seconds as an RFC 3339 UTC timestamp at second precision: 2026-11-22T06:40:00Z."""
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def add_routes(app: web.Application) -> None:
    app.middlewares.append(_json_errors)
    app.router.add_post("/api/rooms/create", create_room)
    app.router.add_get("/api/rooms/{room_id}", get_room)
    app.router.add_delete("/api/rooms/{room_id}", delete_room)
    app.router.add_get("/health", health)
    app.router.add_get("/api/openapi.json", _openapi_handler(load_openapi()))


def load_openapi() -> dict[str, Any]:
    """The OpenAPI 3.0 description of this API, shipped in the package as openapi.json."""
    text = resources.files(__package__).joinpath("openapi.json").read_text(encoding="utf-8")
    document: dict[str, Any] = json.loads(text)
    document["info"]["version"] = __version__
    return document


def _openapi_handler(document: dict[str, Any]) -> Callable[[web.Request], Awaitable[web.Response]]:
    body = json.dumps(document).encode()

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    return handler


def _error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    body = {"error": {"code": code, "message": message}}
    return web.json_response(body, status=status, headers=headers)


def _is_api_path(path: str) -> bool:
    return path.startswith("/api/") or path in ("/api", "/health")


@web.middleware
async def _json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    if not _is_api_path(request.path):
        return await handler(request)
    try:
        return await handler(request)
    except ApiError as exc:
        return _error_response(exc.status, exc.code, exc.message, exc.headers)
    except RegistryUnavailable as exc:
        log.warning("registry unavailable", extra={"path": request.path, "error": str(exc)})
        return _error_response(
            503,
            "REGISTRY_UNAVAILABLE",
            "the room registry is unavailable; try again shortly",
            {"Retry-After": str(REGISTRY_RETRY_AFTER)},
        )
    except web.HTTPException as exc:
        if exc.status < 400:  # redirects and the like are not errors
            raise
        code = _HTTP_CODES.get(exc.status, "INTERNAL" if exc.status >= 500 else "BAD_REQUEST")
        headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
        return _error_response(exc.status, code, exc.reason, headers)
    except Exception:
        log.exception("unhandled error", extra={"method": request.method, "path": request.path})
        return _error_response(500, "INTERNAL", "internal server error")


def _authenticate(request: web.Request) -> str:
    try:
        return verify_bearer(request.app[API_SECRET], request.headers.get("Authorization"))
    except Unauthorized as exc:
        # RFC 6750 §3: say which scheme is expected, and whether the token was the problem.
        has_token = "Authorization" in request.headers
        challenge = 'Bearer error="invalid_token"' if has_token else "Bearer"
        raise ApiError(401, "UNAUTHORIZED", str(exc), {"WWW-Authenticate": challenge}) from None


def _room_id(request: web.Request) -> str:
    room_id = request.match_info["room_id"]
    if not is_valid_room_id(room_id):
        raise ApiError(400, "INVALID_ROOM_ID", "a room id is 10 letters and digits")
    return room_id


async def _existing_room(request: web.Request, room_id: str) -> RoomRecord:
    record = await request.app[REGISTRY].get(room_id)
    if record is None:
        raise ApiError(404, "ROOM_NOT_FOUND", f"no room {room_id}")
    return record


async def _read_create_body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():  # no body at all is a valid request
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise ApiError(400, "BAD_REQUEST", "the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise ApiError(400, "BAD_REQUEST", "the body must be a JSON object")
    unknown = sorted(set(body) - {"creator_user_id"})
    if unknown:
        raise ApiError(400, "BAD_REQUEST", f"unknown field {unknown[0]!r}")
    return body


def _creator_user_id(body: Mapping[str, Any]) -> CreatorId:
    value = body.get("creator_user_id")
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        if abs(value) > MAX_CREATOR_ID_INT:
            raise ApiError(400, "BAD_REQUEST", "creator_user_id is out of range")
        return value
    if isinstance(value, str) and 1 <= len(value) <= MAX_CREATOR_ID_LENGTH:
        return value
    raise ApiError(
        400,
        "BAD_REQUEST",
        f"creator_user_id must be an integer or a string of 1 to {MAX_CREATOR_ID_LENGTH} "
        "characters",
    )


def _at_capacity(max_rooms: int, sub: str) -> ApiError:
    log.warning("room cap reached", extra={"max_rooms": max_rooms, "sub": sub})
    return ApiError(503, "AT_CAPACITY", f"the server already holds {max_rooms} rooms")


async def _check_create_allowed(request: web.Request, sub: str, creator: CreatorId) -> None:
    """503 when the room cap is reached, 429 when the token or the creator is over its rate.

    The cap comes first, so that a refusal for capacity uses up no one's rate; `create`
    checks it again atomically, so that concurrent creates cannot pass it together."""
    config, registry = request.app[CONFIG], request.app[REGISTRY]
    if await registry.count() >= config.rooms.max_rooms:
        raise _at_capacity(config.rooms.max_rooms, sub)
    limits = [("token", f"create:sub:{sub}", config.api.rooms_per_minute_per_token)]
    if creator is not None:
        limits.append(
            (
                "creator_user_id",
                f"create:creator:{creator}",
                config.api.rooms_per_minute_per_creator,
            )
        )
    for what, key, limit in limits:
        wait = await registry.rate_limit(key, limit, RATE_WINDOW_SECONDS)
        if wait > 0:
            retry_after = retry_after_seconds(wait)
            request.app[ROOMS].counts.rate_limited[f"create_per_{what}"] += 1
            log.info("rate limited", extra={"limit": what, "sub": sub, "retry_after": retry_after})
            raise ApiError(
                429,
                "RATE_LIMITED",
                f"more than {limit} rooms per minute for this {what}; retry in {retry_after} s",
                {"Retry-After": str(retry_after)},
            )


async def create_room(request: web.Request) -> web.Response:
    sub = _authenticate(request)
    lifecycle = request.app[LIFECYCLE]
    if not lifecycle.is_ready:
        retry_after = request.app[CONFIG].server.shutdown_retry_after_seconds
        raise ApiError(
            503,
            "SHUTTING_DOWN",
            f"this server is {lifecycle.phase}: {lifecycle.reason}",
            {"Retry-After": str(max(1, retry_after))},
        )
    creator = _creator_user_id(await _read_create_body(request))
    await _check_create_allowed(request, sub, creator)
    node = await request.app[NODE].place()
    max_rooms = request.app[CONFIG].rooms.max_rooms
    try:
        record = await request.app[REGISTRY].create(creator, node.node_id, max_rooms)
    except RoomCapReached:
        raise _at_capacity(max_rooms, sub) from None
    request.app[ROOMS].counts.rooms_created += 1
    log.info("room created", extra={"room_id": record.room_id, "sub": sub, "node": node.node_id})
    body = {
        "room_id": record.room_id,
        "url": f"{request.app[EDGE].base_url(request)}/room/{record.room_id}",
        "created_at": rfc3339(record.created_at),
        "expires_at": rfc3339(record.expires_at),
    }
    return web.json_response(body, status=201, headers={"Location": f"/api/rooms/{record.room_id}"})


async def get_room(request: web.Request) -> web.Response:
    room_id = _room_id(request)
    record = await _existing_room(request, room_id)
    if record.expired():
        raise ApiError(410, "ROOM_EXPIRED", f"room {room_id} has expired")
    node = request.app[NODE]
    try:
        owner = await node.route(record)  # moves the room if its node is dead
    except LookupError:
        raise ApiError(404, "ROOM_NOT_FOUND", f"no room {room_id}") from None
    if owner.node_id == node.node_id:
        participants = request.app[ROOMS].participants(room_id)
    elif owner.node_id == record.node_id:  # as its node published it (join, leave, heartbeat)
        participants = record.participants
    else:  # just moved off a dead node: nobody is in it yet
        participants = 0
    return web.json_response(
        {
            "room_id": room_id,
            "active": participants > 0,
            "participants": participants,
            "created_at": rfc3339(record.created_at),
            "expires_at": rfc3339(record.expires_at),
            "signaling_url": _signaling_url(request, owner, room_id),
        }
    )


def _signaling_url(request: web.Request, owner: NodeInfo, room_id: str) -> str:
    """The owner's WebSocket URL for the room. A single node with no configured URL
    (server.public_url, cluster.node_url) names itself as the client reached it, so that a
    page opened at http://192.168.1.5:8080 does not get sent to localhost."""
    config = request.app[CONFIG]
    configured = config.server.public_url or config.cluster.node_url
    if owner.node_id == request.app[NODE].node_id and not configured:
        # As the client reached us: through trusted proxies, with TLS or not.
        base = request.app[EDGE].base_url(request)
        return f"ws{base.removeprefix('http')}/ws/{room_id}"
    return owner.room_signaling_url(room_id)


async def delete_room(request: web.Request) -> web.Response:
    sub = _authenticate(request)
    room_id = _room_id(request)
    await _existing_room(request, room_id)  # an expired room may still be deleted
    # The record goes first, so that nobody can join while the live room is being ended.
    await request.app[REGISTRY].delete(room_id)
    await request.app[ROOMS].end_room(room_id)
    request.app[ROOMS].counts.rooms_deleted += 1
    log.info("room deleted", extra={"room_id": room_id, "sub": sub})
    return web.Response(status=204)


async def health(request: web.Request) -> web.Response:
    """200 when the server takes new calls; 503 with the reason while starting or draining
    (the process is alive: calls in progress go on)."""
    rooms = request.app[ROOMS]
    lifecycle = request.app[LIFECYCLE]
    body: dict[str, Any] = {
        "status": "ok" if lifecycle.is_ready else str(lifecycle.phase),
        "rooms": rooms.room_count,
        "peers": rooms.peer_count,
        "version": __version__,
    }
    if lifecycle.is_ready:
        return web.json_response(body)
    body["error"] = {"code": lifecycle.phase.name, "message": lifecycle.reason}
    return web.json_response(body, status=503)
