"""Typed configuration: defaults, then config.toml, then KAAMOS_<SECTION>_<KEY> env vars.

Unknown sections or keys and values of the wrong type stop the start with a message that
names the key, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import math
import os
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .ice_addresses import AnnouncedAddresses

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_STATIC_DIR = PACKAGE_DIR.parent / "static"
VIDEO_CODECS = ("VP8", "H264")
ICE_URL_SCHEMES = ("stun:", "stuns:", "turn:", "turns:")
MAX_EXPIRE_HOURS = 24 * 3650
# RFC 7518 §3.2: an HS256 key shorter than the hash output weakens it (PyJWT warns too).
MIN_SECRET_LENGTH = 32


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
    # On SIGTERM: refuse new rooms and joins, tell peers, and let calls go on this long.
    drain_seconds: float = 30.0
    # Told to peers in server-shutdown: wait this long after the socket closes, then rejoin.
    shutdown_retry_after_seconds: int = 5
    # Serve HTTPS directly with this PEM certificate chain and private key (both or neither).
    tls_cert_file: str = ""
    tls_key_file: str = ""
    # Reverse proxies (addresses or networks) whose X-Forwarded-For/-Proto/-Host are trusted.
    trusted_proxies: list[str] = field(default_factory=list)


@dataclass
class AuthConfig:
    # HS256 secret for bot bearer tokens; empty: generated once and kept in state_dir.
    api_secret: str = ""


@dataclass
class ApiConfig:
    # Room creations allowed per minute for one creator_user_id, and for one token `sub`.
    rooms_per_minute_per_creator: int = 10
    rooms_per_minute_per_token: int = 10
    # Origins (scheme://host[:port]) allowed to call /api/ from a browser (CORS).
    cors_origins: list[str] = field(default_factory=list)


@dataclass
class RoomsConfig:
    max_peers: int = 4
    # Rooms that may exist at once; POST /api/rooms/create answers 503 AT_CAPACITY above it.
    max_rooms: int = 50
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
    # The server pings every socket this often; one from which nothing (a pong or a
    # message) has arrived for ping_timeout_seconds is closed and its peer removed.
    ping_interval_seconds: float = 5.0
    ping_timeout_seconds: float = 20.0
    # A peer that leaves an offer unanswered this long is disconnected.
    answer_timeout_seconds: float = 30.0
    # More bad messages than this within 10 seconds closes the socket (flood).
    max_bad_messages: int = 10
    # More messages of any kind than this within 10 seconds closes the socket (flood).
    max_messages: int = 200
    # WebSocket connections one client IP may open per minute (RATE_LIMITED, close 4429).
    joins_per_minute_per_ip: int = 60
    # Page origins allowed to open the WebSocket besides the server's own (public_url).
    allowed_origins: list[str] = field(default_factory=list)


@dataclass
class IceConfig:
    # Local addresses to gather host candidates on; empty: every non-loopback address.
    # Tests set ["127.0.0.1"] so that no packet leaves the machine.
    host_addresses: list[str] = field(default_factory=list)
    # Network interfaces whose addresses are added to host_addresses, e.g. ["eth0"].
    interfaces: list[str] = field(default_factory=list)
    # NAT 1:1: the address put in candidates instead of the bound one, as "PUBLIC" (every
    # bound address of that IP family) or "LOCAL=PUBLIC".
    announced_addresses: list[str] = field(default_factory=list)
    # Inclusive UDP port range for media sockets; 0 and 0: any port the OS picks.
    port_min: int = 0
    port_max: int = 0
    # STUN/TURN servers handed to browsers in joined.ice_servers, e.g.
    # [{urls = "stun:stun.example.org:3478"}]. The SFU itself uses none.
    servers: list[dict[str, Any]] = field(default_factory=list)
    # TURN servers that take TURN REST credentials (coturn's use-auth-secret), e.g.
    # ["turn:turn.example.org:3478"]; each join gets a username and credential from
    # turn_secret that expire after turn_credential_ttl_seconds.
    turn_urls: list[str] = field(default_factory=list)
    turn_secret: str = ""
    turn_credential_ttl_seconds: int = 86400


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
    api: ApiConfig = field(default_factory=ApiConfig)
    rooms: RoomsConfig = field(default_factory=RoomsConfig)
    signaling: SignalingConfig = field(default_factory=SignalingConfig)
    ice: IceConfig = field(default_factory=IceConfig)
    media: MediaConfig = field(default_factory=MediaConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    log: LogConfig = field(default_factory=LogConfig)

    @property
    def public_url(self) -> str:
        scheme = "https" if self.server.tls_cert_file else "http"
        url = self.server.public_url or f"{scheme}://localhost:{self.server.port}"
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


def load_config(
    path: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Sequence[str] = (),
) -> Config:
    """Build the configuration: defaults < TOML file < environment < `overrides`.

    `overrides` are command-line `section.key=value` strings, parsed like env values.
    """
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
    apply_overrides(config, overrides)
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
    """Apply KAAMOS_<SECTION>_<KEY> variables. A variable that starts with a known section's
    prefix but names no key is an error (a typo); other KAAMOS_* variables are not ours."""
    known: set[str] = set()
    for section_field in dataclasses.fields(config):
        section = getattr(config, section_field.name)
        for f in dataclasses.fields(section):
            name = f"KAAMOS_{section_field.name}_{f.name}".upper()
            known.add(name)
            if name in env:
                value = _parse_text(name, f, env[name])
                setattr(section, f.name, _coerce(f"{section_field.name}.{f.name}", f, value, name))
    prefixes = tuple(f"KAAMOS_{f.name.upper()}_" for f in dataclasses.fields(config))
    for name in sorted(env):
        if name.startswith(prefixes) and name not in known:
            raise ConfigError(f"{name}: unknown setting (no such key in config.toml)")


def apply_overrides(config: Config, overrides: Sequence[str]) -> None:
    """Apply command-line `section.key=value` settings (values written as in env vars)."""
    for item in overrides:
        origin = f"--set {item}"
        name, sep, raw = item.partition("=")
        section_name, dot, key = name.strip().partition(".")
        if not sep or not dot:
            raise ConfigError(f"{origin}: expected section.key=value")
        if section_name not in {f.name for f in dataclasses.fields(config)}:
            raise ConfigError(f"{origin}: unknown section [{section_name}]")
        section = getattr(config, section_name)
        fields = {f.name: f for f in dataclasses.fields(section)}
        if key not in fields:
            raise ConfigError(f"{origin}: unknown key {section_name}.{key}")
        value = _parse_text(origin, fields[key], raw)
        setattr(section, key, _coerce(f"{section_name}.{key}", fields[key], value, origin))


def _parse_text(name: str, f: dataclasses.Field[Any], raw: str) -> Any:
    """A setting written as text (env var or --set): lists comma-separated, except lists of
    tables, which are JSON."""
    kind = str(f.type)
    if kind.startswith("list[dict"):
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
        # inf and nan would pass every "> 0" check and then overflow the first time-sum.
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        ok = ok and math.isfinite(value)
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


def _validate_ice(ice: IceConfig, check: Callable[[bool, str, str], None]) -> None:
    for address in ice.host_addresses:
        check(_is_ip(address), "ice.host_addresses", f"{address!r} is not an IP address")
    try:
        AnnouncedAddresses.parse(ice.announced_addresses)
    except ValueError as exc:
        check(False, "ice.announced_addresses", str(exc))
    if ice.port_min or ice.port_max:
        check(
            1024 <= ice.port_min <= ice.port_max <= 65535,
            "ice.port_min",
            "port_min and port_max must be 1024 <= port_min <= port_max <= 65535 (or both 0)",
        )
    for url in ice.turn_urls:
        check(
            url.startswith(("turn:", "turns:")), "ice.turn_urls", f"{url!r} is not turn: or turns:"
        )
    if ice.turn_urls:
        check(len(ice.turn_secret) >= 16, "ice.turn_secret", "needs at least 16 characters")
    check(
        ice.turn_credential_ttl_seconds >= 60,
        "ice.turn_credential_ttl_seconds",
        "must be at least 60",
    )


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


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
    check(
        bool(config.server.tls_cert_file) == bool(config.server.tls_key_file),
        "server.tls_cert_file",
        "set both server.tls_cert_file and server.tls_key_file, or neither",
    )
    for proxy in config.server.trusted_proxies:
        check(_is_network(proxy), "server.trusted_proxies", f"not an address or network: {proxy!r}")
    check(
        not config.auth.api_secret or len(config.auth.api_secret.encode()) >= MIN_SECRET_LENGTH,
        "auth.api_secret",
        f"must be at least {MIN_SECRET_LENGTH} characters",
    )
    check(
        config.api.rooms_per_minute_per_creator >= 1,
        "api.rooms_per_minute_per_creator",
        "must be >= 1",
    )
    check(
        config.api.rooms_per_minute_per_token >= 1, "api.rooms_per_minute_per_token", "must be >= 1"
    )
    for origin in config.api.cors_origins:
        check(
            is_origin(origin),
            "api.cors_origins",
            f"not an origin (scheme://host[:port]): {origin!r}",
        )
    check(config.rooms.max_peers >= 2, "rooms.max_peers", "must be at least 2")
    check(config.rooms.max_rooms >= 1, "rooms.max_rooms", "must be >= 1")
    check(
        0 < config.rooms.expire_after_hours <= MAX_EXPIRE_HOURS,
        "rooms.expire_after_hours",
        f"must be positive and at most {MAX_EXPIRE_HOURS} (ten years)",
    )
    check(
        config.signaling.join_timeout_seconds > 0,
        "signaling.join_timeout_seconds",
        "must be positive",
    )
    check(
        config.signaling.ping_interval_seconds > 0,
        "signaling.ping_interval_seconds",
        "must be positive",
    )
    check(
        config.signaling.ping_timeout_seconds >= 2 * config.signaling.ping_interval_seconds,
        "signaling.ping_timeout_seconds",
        "must be at least twice signaling.ping_interval_seconds",
    )
    check(
        config.signaling.answer_timeout_seconds > 0,
        "signaling.answer_timeout_seconds",
        "must be positive",
    )
    check(config.rooms.peer_timeout_seconds > 0, "rooms.peer_timeout_seconds", "must be positive")
    check(
        config.signaling.max_message_bytes >= 1024,
        "signaling.max_message_bytes",
        "must be at least 1024",
    )
    check(config.signaling.max_bad_messages >= 1, "signaling.max_bad_messages", "must be >= 1")
    check(config.signaling.max_messages >= 20, "signaling.max_messages", "must be >= 20")
    check(
        config.signaling.joins_per_minute_per_ip >= 1,
        "signaling.joins_per_minute_per_ip",
        "must be >= 1",
    )
    for origin in config.signaling.allowed_origins:
        check(
            is_origin(origin),
            "signaling.allowed_origins",
            f"not an origin (scheme://host[:port]): {origin!r}",
        )
    check(bool(config.media.video_codecs), "media.video_codecs", "must name at least one codec")
    for codec in config.media.video_codecs:
        check(codec in VIDEO_CODECS, "media.video_codecs", f"unknown codec {codec!r}")
    for server in config.ice.servers:
        check("urls" in server, "ice.servers", "every server needs urls")
        urls = server.get("urls")
        for url in urls if isinstance(urls, list) else [urls]:
            check(
                isinstance(url, str) and url.startswith(ICE_URL_SCHEMES),
                "ice.servers",
                f"{url!r} is not a stun:, stuns:, turn: or turns: URL (browsers refuse it)",
            )
    _validate_ice(config.ice, check)
    check(config.server.drain_seconds >= 0, "server.drain_seconds", "must be 0 or more")
    check(
        config.server.shutdown_retry_after_seconds >= 0,
        "server.shutdown_retry_after_seconds",
        "must be 0 or more",
    )
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


def is_origin(text: str) -> bool:
    """True for a browser origin as the Origin header spells it: scheme://host[:port]."""
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return False
    return (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and not parts.path
        and not parts.query
        and not parts.fragment
        and "@" not in parts.netloc
    )


def origin_of(url: str) -> str:
    """The origin of an http(s) URL, lower-cased as browsers send it."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _is_network(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True
