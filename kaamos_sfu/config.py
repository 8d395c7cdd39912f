"""Typed configuration: defaults, then config.toml, then KAAMOS_<SECTION>_<KEY> env vars.

Unknown sections or keys and values of the wrong type stop the start with a message that
names the key, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_STATIC_DIR = PACKAGE_DIR.parent / "static"
VIDEO_CODECS = ("VP8", "H264")


class ConfigError(ValueError):
    """A setting is unknown or invalid; the message names it."""


@dataclass
class ServerConfig:
    host: str = "0.0.0.0"
    port: int = 8080
    # Base of the links handed out by POST /api/rooms/create; empty: http://localhost:<port>
    public_url: str = ""
    # Where the generated API secret is kept between restarts.
    state_dir: str = "./kaamos-state"
    # Browser client files; empty: the static/ folder next to the package.
    static_dir: str = ""


@dataclass
class AuthConfig:
    # HS256 secret for bot bearer tokens; empty: generated once and kept in state_dir.
    api_secret: str = ""


@dataclass
class RoomsConfig:
    max_peers: int = 4
    # A room expires this long after its last activity (create, join, leave).
    expire_after_hours: float = 24.0
    # A peer whose media and ICE consent stop is removed after this many seconds.
    peer_timeout_seconds: float = 10.0


@dataclass
class SignalingConfig:
    # Text frames above this size get BAD_MESSAGE and are ignored.
    max_message_bytes: int = 65536
    # A socket that has not sent a valid join within this time is closed.
    join_timeout_seconds: float = 10.0
    # A peer that leaves an offer unanswered this long is disconnected.
    answer_timeout_seconds: float = 30.0
    # More bad messages than this within 10 seconds closes the socket (flood).
    max_bad_messages: int = 10
    # More messages of any kind than this within 10 seconds closes the socket (flood).
    max_messages: int = 200


@dataclass
class IceConfig:
    # Local addresses to gather host candidates on; empty: every non-loopback address.
    # Tests set ["127.0.0.1"] so that no packet leaves the machine.
    host_addresses: list[str] = field(default_factory=list)
    # STUN/TURN servers handed to browsers in joined.ice_servers, e.g.
    # [{urls = "stun:stun.example.org:3478"}]. The SFU itself uses none.
    servers: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class MediaConfig:
    # Video codecs offered to publishers, most preferred first (VP8, H264).
    video_codecs: list[str] = field(default_factory=lambda: list(VIDEO_CODECS))


@dataclass
class ClusterConfig:
    # redis://host:port/db shared by every node. Empty: rooms live in this process only.
    redis_url: str = ""
    # This node's id in the cluster. Empty: <hostname>-<port>-<random>, new on every start.
    node_id: str = ""
    # This node's own base URL as browsers reach it; its WebSocket URL is derived from it
    # (http -> ws, https -> wss). "{port}" is replaced by server.port. Empty:
    # server.public_url.
    node_url: str = ""
    # Rooms this node is meant to hold: placement weighs each node's load by it.
    capacity: int = 100
    # How often the node refreshes its entry, and how long the entry lives without that.
    heartbeat_seconds: float = 2.0
    node_ttl_seconds: float = 6.0
    # A Redis call slower than this fails (503 REGISTRY_UNAVAILABLE).
    redis_timeout_seconds: float = 2.0


@dataclass
class LogConfig:
    level: str = "info"


@dataclass
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    rooms: RoomsConfig = field(default_factory=RoomsConfig)
    signaling: SignalingConfig = field(default_factory=SignalingConfig)
    ice: IceConfig = field(default_factory=IceConfig)
    media: MediaConfig = field(default_factory=MediaConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    log: LogConfig = field(default_factory=LogConfig)

    @property
    def public_url(self) -> str:
        url = self.server.public_url or f"http://localhost:{self.server.port}"
        return url.rstrip("/")

    @property
    def node_url(self) -> str:
        """This node's own base URL (cluster.node_url with {port} filled, or public_url)."""
        url = self.cluster.node_url.replace("{port}", str(self.server.port))
        return url.rstrip("/") if url else self.public_url

    @property
    def signaling_url(self) -> str:
        """Base of this node's WebSocket URLs: ws(s)://host[:port][/prefix]."""
        return "ws" + self.node_url.removeprefix("http")

    @property
    def static_dir(self) -> Path:
        return Path(self.server.static_dir) if self.server.static_dir else DEFAULT_STATIC_DIR


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Build the configuration from defaults, an optional TOML file and the environment."""
    config = Config()
    if path is not None:
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
        apply_mapping(config, data, origin=str(path))
    apply_env(config, os.environ if env is None else env)
    validate(config)
    return config


def apply_mapping(config: Config, data: Mapping[str, Any], origin: str) -> None:
    sections = {f.name: f for f in dataclasses.fields(config)}
    for section_name, values in data.items():
        if section_name not in sections:
            raise ConfigError(f"{origin}: unknown section [{section_name}]")
        if not isinstance(values, dict):
            raise ConfigError(f"{origin}: [{section_name}] must be a table")
        section = getattr(config, section_name)
        fields = {f.name: f for f in dataclasses.fields(section)}
        for key, value in values.items():
            if key not in fields:
                raise ConfigError(f"{origin}: unknown key {section_name}.{key}")
            setattr(section, key, _coerce(f"{section_name}.{key}", fields[key], value, origin))


def apply_env(config: Config, env: Mapping[str, str]) -> None:
    for section_field in dataclasses.fields(config):
        section = getattr(config, section_field.name)
        for f in dataclasses.fields(section):
            name = f"KAAMOS_{section_field.name}_{f.name}".upper()
            if name in env:
                value = _parse_env(name, f, env[name])
                setattr(section, f.name, _coerce(f"{section_field.name}.{f.name}", f, value, name))


def _parse_env(name: str, f: dataclasses.Field[Any], raw: str) -> Any:
    kind = str(f.type)
    if kind.startswith("list[dict"):
        import json

        try:
            return json.loads(raw)
        except ValueError as exc:
            raise ConfigError(f"{name}: expected a JSON list: {exc}") from exc
    if kind.startswith("list"):
        return [item.strip() for item in raw.split(",") if item.strip()]
    if kind == "bool":
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name}: expected true or false, got {raw!r}")
    if kind == "int":
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{name}: expected an integer, got {raw!r}") from None
    if kind == "float":
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"{name}: expected a number, got {raw!r}") from None
    return raw


def _coerce(key: str, f: dataclasses.Field[Any], value: Any, origin: str) -> Any:
    kind = str(f.type)
    ok: bool
    if kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == "float":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif kind == "bool":
        ok = isinstance(value, bool)
    elif kind == "str":
        ok = isinstance(value, str)
    elif kind.startswith("list[dict"):
        ok = isinstance(value, list) and all(isinstance(v, dict) for v in value)
    elif kind.startswith("list"):
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    else:  # pragma: no cover - every field type is listed above
        raise AssertionError(kind)
    if not ok:
        raise ConfigError(f"{origin}: {key} must be of type {kind}, got {value!r}")
    return value


def validate(config: Config) -> None:
    def check(condition: bool, key: str, message: str) -> None:
        if not condition:
            raise ConfigError(f"{key}: {message}")

    check(0 < config.server.port < 65536, "server.port", "must be between 1 and 65535")
    check(
        not config.server.public_url
        or config.server.public_url.startswith(("http://", "https://")),
        "server.public_url",
        "must start with http:// or https://",
    )
    check(config.rooms.max_peers >= 2, "rooms.max_peers", "must be at least 2")
    check(config.rooms.expire_after_hours > 0, "rooms.expire_after_hours", "must be positive")
    check(config.rooms.peer_timeout_seconds > 0, "rooms.peer_timeout_seconds", "must be positive")
    check(
        config.signaling.max_message_bytes >= 1024,
        "signaling.max_message_bytes",
        "must be at least 1024",
    )
    check(config.signaling.max_bad_messages >= 1, "signaling.max_bad_messages", "must be >= 1")
    check(config.signaling.max_messages >= 20, "signaling.max_messages", "must be >= 20")
    check(bool(config.media.video_codecs), "media.video_codecs", "must name at least one codec")
    for codec in config.media.video_codecs:
        check(codec in VIDEO_CODECS, "media.video_codecs", f"unknown codec {codec!r}")
    for server in config.ice.servers:
        check("urls" in server, "ice.servers", "every server needs urls")
    check(
        not config.cluster.redis_url
        or config.cluster.redis_url.startswith(("redis://", "rediss://", "unix://")),
        "cluster.redis_url",
        "must start with redis://, rediss:// or unix://",
    )
    check(
        not config.cluster.node_url or config.cluster.node_url.startswith(("http://", "https://")),
        "cluster.node_url",
        "must start with http:// or https://",
    )
    check(config.cluster.capacity >= 1, "cluster.capacity", "must be at least 1")
    check(config.cluster.heartbeat_seconds > 0, "cluster.heartbeat_seconds", "must be positive")
    check(
        config.cluster.node_ttl_seconds >= 2 * config.cluster.heartbeat_seconds,
        "cluster.node_ttl_seconds",
        "must be at least twice cluster.heartbeat_seconds",
    )
    check(
        config.cluster.redis_timeout_seconds > 0,
        "cluster.redis_timeout_seconds",
        "must be positive",
    )
    check(
        config.log.level in ("debug", "info", "warning", "error"),
        "log.level",
        "must be debug, info, warning or error",
    )
