"""Range and format checks on a loaded Config, one function per section.

The first setting found wrong stops the start: a ConfigError "<section>.<key>: <why>".
"""

from __future__ import annotations

import ipaddress
from typing import Any

from ..ice.addresses import AnnouncedAddresses
from .origins import is_origin
from .schema import (
    VIDEO_CODECS,
    ApiConfig,
    AuthConfig,
    ClusterConfig,
    Config,
    ConfigError,
    IceConfig,
    LogConfig,
    MediaConfig,
    RoomsConfig,
    ServerConfig,
    SignalingConfig,
)

ICE_URL_SCHEMES = ("stun:", "stuns:", "turn:", "turns:")
MAX_EXPIRE_HOURS = 24 * 3650
# RFC 7518 §3.2: an HS256 key shorter than the hash output weakens it (PyJWT warns too).
MIN_SECRET_LENGTH = 32


def validate(config: Config) -> None:
    _validate_server(config.server)
    _validate_auth(config.auth)
    _validate_api(config.api)
    _validate_rooms(config.rooms)
    _validate_signaling(config.signaling)
    _validate_media(config.media)
    _validate_ice(config.ice)
    _validate_cluster(config.cluster)
    _validate_log(config.log)


def _check(condition: bool, key: str, message: str) -> None:
    if not condition:
        raise ConfigError(f"{key}: {message}")


def _validate_server(server: ServerConfig) -> None:
    _check(0 < server.port < 65536, "server.port", "must be between 1 and 65535")
    _check(
        not server.public_url or server.public_url.startswith(("http://", "https://")),
        "server.public_url",
        "must start with http:// or https://",
    )
    _check(
        bool(server.tls_cert_file) == bool(server.tls_key_file),
        "server.tls_cert_file",
        "set both server.tls_cert_file and server.tls_key_file, or neither",
    )
    for proxy in server.trusted_proxies:
        _check(
            _is_network(proxy), "server.trusted_proxies", f"not an address or network: {proxy!r}"
        )
    _check(server.drain_seconds >= 0, "server.drain_seconds", "must be 0 or more")
    _check(
        server.shutdown_retry_after_seconds >= 0,
        "server.shutdown_retry_after_seconds",
        "must be 0 or more",
    )


def _validate_auth(auth: AuthConfig) -> None:
    _check(
        not auth.api_secret or len(auth.api_secret.encode()) >= MIN_SECRET_LENGTH,
        "auth.api_secret",
        f"must be at least {MIN_SECRET_LENGTH} characters",
    )


def _validate_api(api: ApiConfig) -> None:
    _check(
        api.rooms_per_minute_per_creator >= 1, "api.rooms_per_minute_per_creator", "must be >= 1"
    )
    _check(api.rooms_per_minute_per_token >= 1, "api.rooms_per_minute_per_token", "must be >= 1")
    for origin in api.cors_origins:
        _check(
            is_origin(origin),
            "api.cors_origins",
            f"not an origin (scheme://host[:port]): {origin!r}",
        )


def _validate_rooms(rooms: RoomsConfig) -> None:
    _check(rooms.max_peers >= 2, "rooms.max_peers", "must be at least 2")
    _check(rooms.max_rooms >= 1, "rooms.max_rooms", "must be >= 1")
    _check(
        0 < rooms.expire_after_hours <= MAX_EXPIRE_HOURS,
        "rooms.expire_after_hours",
        f"must be positive and at most {MAX_EXPIRE_HOURS} (ten years)",
    )
    _check(rooms.peer_timeout_seconds > 0, "rooms.peer_timeout_seconds", "must be positive")


def _validate_signaling(signaling: SignalingConfig) -> None:
    _check(signaling.join_timeout_seconds > 0, "signaling.join_timeout_seconds", "must be positive")
    _check(
        signaling.ping_interval_seconds > 0, "signaling.ping_interval_seconds", "must be positive"
    )
    _check(
        signaling.ping_timeout_seconds >= 2 * signaling.ping_interval_seconds,
        "signaling.ping_timeout_seconds",
        "must be at least twice signaling.ping_interval_seconds",
    )
    _check(
        signaling.answer_timeout_seconds > 0, "signaling.answer_timeout_seconds", "must be positive"
    )
    _check(
        signaling.max_message_bytes >= 1024,
        "signaling.max_message_bytes",
        "must be at least 1024",
    )
    _check(signaling.max_bad_messages >= 1, "signaling.max_bad_messages", "must be >= 1")
    _check(signaling.max_messages >= 20, "signaling.max_messages", "must be >= 20")
    _check(
        signaling.joins_per_minute_per_ip >= 1, "signaling.joins_per_minute_per_ip", "must be >= 1"
    )
    for origin in signaling.allowed_origins:
        _check(
            is_origin(origin),
            "signaling.allowed_origins",
            f"not an origin (scheme://host[:port]): {origin!r}",
        )


def _validate_media(media: MediaConfig) -> None:
    _check(bool(media.video_codecs), "media.video_codecs", "must name at least one codec")
    for codec in media.video_codecs:
        _check(codec in VIDEO_CODECS, "media.video_codecs", f"unknown codec {codec!r}")


def _validate_ice_servers(servers: list[dict[str, Any]]) -> None:
    for server in servers:
        _check("urls" in server, "ice.servers", "every server needs urls")
        urls = server.get("urls")
        for url in urls if isinstance(urls, list) else [urls]:
            _check(
                isinstance(url, str) and url.startswith(ICE_URL_SCHEMES),
                "ice.servers",
                f"{url!r} is not a stun:, stuns:, turn: or turns: URL (browsers refuse it)",
            )


def _validate_ice(ice: IceConfig) -> None:
    _validate_ice_servers(ice.servers)
    for address in ice.host_addresses:
        _check(_is_ip(address), "ice.host_addresses", f"{address!r} is not an IP address")
    try:
        AnnouncedAddresses.parse(ice.announced_addresses)
    except ValueError as exc:
        _check(False, "ice.announced_addresses", str(exc))
    if ice.port_min or ice.port_max:
        _check(
            1024 <= ice.port_min <= ice.port_max <= 65535,
            "ice.port_min",
            "port_min and port_max must be 1024 <= port_min <= port_max <= 65535 (or both 0)",
        )
    for url in ice.turn_urls:
        _check(
            url.startswith(("turn:", "turns:")), "ice.turn_urls", f"{url!r} is not turn: or turns:"
        )
    if ice.turn_urls:
        _check(len(ice.turn_secret) >= 16, "ice.turn_secret", "needs at least 16 characters")
    _check(
        ice.turn_credential_ttl_seconds >= 60,
        "ice.turn_credential_ttl_seconds",
        "must be at least 60",
    )


def _validate_cluster(cluster: ClusterConfig) -> None:
    _check(
        not cluster.redis_url or cluster.redis_url.startswith(("redis://", "rediss://", "unix://")),
        "cluster.redis_url",
        "must start with redis://, rediss:// or unix://",
    )
    _check(
        not cluster.node_url or cluster.node_url.startswith(("http://", "https://")),
        "cluster.node_url",
        "must start with http:// or https://",
    )
    _check(cluster.capacity >= 1, "cluster.capacity", "must be at least 1")
    _check(cluster.heartbeat_seconds > 0, "cluster.heartbeat_seconds", "must be positive")
    _check(
        cluster.node_ttl_seconds >= 2 * cluster.heartbeat_seconds,
        "cluster.node_ttl_seconds",
        "must be at least twice cluster.heartbeat_seconds",
    )
    _check(cluster.redis_timeout_seconds > 0, "cluster.redis_timeout_seconds", "must be positive")


def _validate_log(log: LogConfig) -> None:
    _check(
        log.level in ("debug", "info", "warning", "error"),
        "log.level",
        "must be debug, info, warning or error",
    )


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _is_network(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True
