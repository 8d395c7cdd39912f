"""The signaling protocol of docs/protocol.md as typed messages: parse and serialize, no I/O."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any

SOURCES = ("camera", "microphone", "screen")
SOURCE_KIND = {"camera": "video", "microphone": "audio", "screen": "video"}
MUTABLE_SOURCES = ("camera", "microphone")
MAX_NAME_LENGTH = 64


class ErrorCode(StrEnum):
    INVALID_ROOM_ID = "INVALID_ROOM_ID"
    ROOM_NOT_FOUND = "ROOM_NOT_FOUND"
    ROOM_FULL = "ROOM_FULL"
    ROOM_EXPIRED = "ROOM_EXPIRED"
    WRONG_NODE = "WRONG_NODE"
    REGISTRY_UNAVAILABLE = "REGISTRY_UNAVAILABLE"
    BAD_MESSAGE = "BAD_MESSAGE"
    RATE_LIMITED = "RATE_LIMITED"
    AT_CAPACITY = "AT_CAPACITY"


class CloseCode(IntEnum):
    NORMAL = 1000
    GOING_AWAY = 1001
    MESSAGE_TOO_BIG = 1009
    TRY_AGAIN_LATER = 1013
    ROOM_ENDED = 4001
    INVALID_ROOM_ID = 4400
    ROOM_NOT_FOUND = 4404
    TIMEOUT = 4408
    ROOM_FULL = 4409
    ROOM_EXPIRED = 4410
    WRONG_NODE = 4421
    FLOOD = 4429
    INTERNAL_ERROR = 4500
    TOO_SLOW = 4503


# A refusal is an `error` message followed by a close with this code.
REFUSAL_CLOSE_CODES = {
    ErrorCode.INVALID_ROOM_ID: CloseCode.INVALID_ROOM_ID,
    ErrorCode.ROOM_NOT_FOUND: CloseCode.ROOM_NOT_FOUND,
    ErrorCode.ROOM_FULL: CloseCode.ROOM_FULL,
    ErrorCode.ROOM_EXPIRED: CloseCode.ROOM_EXPIRED,
    ErrorCode.WRONG_NODE: CloseCode.WRONG_NODE,
    ErrorCode.REGISTRY_UNAVAILABLE: CloseCode.TRY_AGAIN_LATER,
}


class BadMessage(Exception):
    """The client sent something the protocol does not allow; the text says what."""


# Client → server


@dataclass(frozen=True)
class Join:
    name: str
    publish: tuple[str, ...]


@dataclass(frozen=True)
class Answer:
    sdp: str


@dataclass(frozen=True)
class IceCandidate:
    candidate: str | None  # None: end of candidates
    sdp_mid: str | None
    sdp_mline_index: int | None


@dataclass(frozen=True)
class Publish:
    source: str


@dataclass(frozen=True)
class Unpublish:
    source: str


@dataclass(frozen=True)
class Mute:
    source: str
    muted: bool


@dataclass(frozen=True)
class Leave:
    pass


ClientMessage = Join | Answer | IceCandidate | Publish | Unpublish | Mute | Leave


def parse_client_message(text: str) -> ClientMessage:
    """Parse one client frame, or raise BadMessage saying what is wrong with it."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        raise BadMessage("invalid JSON") from None
    if not isinstance(data, dict):
        raise BadMessage("a message must be a JSON object")
    kind = data.get("type")
    if not isinstance(kind, str):
        raise BadMessage('missing "type"')
    parser = _PARSERS.get(kind)
    if parser is None:
        raise BadMessage(f"unknown message type {kind!r}")
    return parser(data)


def _field(data: dict[str, Any], name: str, kind: type, *, required: bool = True) -> Any:
    if name not in data:
        if required:
            raise BadMessage(f'{data["type"]}: missing "{name}"')
        return None
    value = data[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        article = "an" if kind.__name__[0] in "aeiou" else "a"
        raise BadMessage(f'{data["type"]}: "{name}" must be {article} {kind.__name__}')
    return value


def _source(data: dict[str, Any], allowed: tuple[str, ...] = SOURCES) -> str:
    source = _field(data, "source", str)
    if source not in allowed:
        raise BadMessage(f'{data["type"]}: "source" must be one of {", ".join(allowed)}')
    return str(source)


def _parse_join(data: dict[str, Any]) -> Join:
    name = _field(data, "name", str).strip()
    if not 1 <= len(name) <= MAX_NAME_LENGTH:
        raise BadMessage(f'join: "name" must be 1 to {MAX_NAME_LENGTH} characters')
    publish = _field(data, "publish", list, required=False) or []
    if any(s not in SOURCES for s in publish) or len(set(publish)) != len(publish):
        raise BadMessage(f'join: "publish" must list distinct sources from {", ".join(SOURCES)}')
    return Join(name=name, publish=tuple(s for s in SOURCES if s in publish))


def _parse_answer(data: dict[str, Any]) -> Answer:
    sdp = _field(data, "sdp", str)
    if not sdp.startswith("v=0"):
        raise BadMessage('answer: "sdp" is not an SDP description')
    return Answer(sdp=sdp)


def _parse_ice_candidate(data: dict[str, Any]) -> IceCandidate:
    candidate = data.get("candidate")
    if candidate is not None and not isinstance(candidate, str):
        raise BadMessage('ice-candidate: "candidate" must be a string or null')
    mid = _field(data, "sdpMid", str, required=False)
    index = _field(data, "sdpMLineIndex", int, required=False)
    if candidate and mid is None and index is None:
        raise BadMessage('ice-candidate: needs "sdpMid" or "sdpMLineIndex"')
    return IceCandidate(candidate=candidate or None, sdp_mid=mid, sdp_mline_index=index)


def _parse_mute(data: dict[str, Any]) -> Mute:
    return Mute(source=_source(data, MUTABLE_SOURCES), muted=_field(data, "muted", bool))


_PARSERS: dict[str, Callable[[dict[str, Any]], ClientMessage]] = {
    "join": _parse_join,
    "answer": _parse_answer,
    "ice-candidate": _parse_ice_candidate,
    "publish": lambda data: Publish(source=_source(data)),
    "unpublish": lambda data: Unpublish(source=_source(data)),
    "mute": _parse_mute,
    "leave": lambda data: Leave(),
}


# Server → client: one dataclass per message type, and one serializer.


@dataclass
class PeerInfo:
    """A participant as the others see it: the `peer` object of docs/protocol.md."""

    peer_id: str
    name: str
    sources: list[str] = field(default_factory=list)
    muted: dict[str, bool] = field(default_factory=lambda: {"camera": False, "microphone": False})

    def to_json(self) -> dict[str, Any]:
        return {
            "peer_id": self.peer_id,
            "name": self.name,
            "sources": [s for s in SOURCES if s in self.sources],
            "muted": dict(self.muted),
        }


@dataclass(frozen=True)
class Joined:
    peer_id: str
    room_id: str
    peers: list[dict[str, Any]]  # the others' peer objects, as they were when it was made
    ice_servers: list[dict[str, Any]]


@dataclass(frozen=True)
class Offer:
    sdp: str
    tracks: dict[str, tuple[str, str]]  # mid -> (peer_id, source)


@dataclass(frozen=True)
class PeerJoined:
    peer: dict[str, Any]


@dataclass(frozen=True)
class PeerLeft:
    peer_id: str


@dataclass(frozen=True)
class PeerUpdated:
    peer: dict[str, Any]


@dataclass(frozen=True)
class RoomEnded:
    pass


@dataclass(frozen=True)
class ServerShutdown:
    retry_after: int


@dataclass(frozen=True)
class Error:
    """`retry_after` (seconds) says when a rate-limited client may retry, `signaling_url`
    where a WRONG_NODE client must connect instead."""

    code: ErrorCode
    message: str
    retry_after: int | None = None
    signaling_url: str | None = None


ServerMessage = (
    Joined | Offer | PeerJoined | PeerLeft | PeerUpdated | RoomEnded | ServerShutdown | Error
)

_SERVER_TYPES: dict[type[Any], str] = {
    Joined: "joined",
    Offer: "offer",
    PeerJoined: "peer-joined",
    PeerLeft: "peer-left",
    PeerUpdated: "peer-updated",
    RoomEnded: "room-ended",
    ServerShutdown: "server-shutdown",
    Error: "error",
}


def peer_joined(peer: PeerInfo) -> PeerJoined:
    return PeerJoined(peer.to_json())  # a copy: later changes to the peer are new events


def peer_updated(peer: PeerInfo) -> PeerUpdated:
    return PeerUpdated(peer.to_json())


def serialize(message: ServerMessage) -> dict[str, Any]:
    """The JSON object of a server message (docs/protocol.md); optional fields only when
    set."""
    body: dict[str, Any] = {"type": _SERVER_TYPES[type(message)]}
    if isinstance(message, Offer):
        body["sdp"] = message.sdp
        body["tracks"] = {
            mid: {"peer_id": peer_id, "source": source}
            for mid, (peer_id, source) in message.tracks.items()
        }
        return body
    for name, value in vars(message).items():
        if value is not None:
            body[name] = str(value) if isinstance(value, ErrorCode) else value
    return body
