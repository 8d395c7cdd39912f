"""The settings: one dataclass per config.toml section, with the defaults config.toml lists.

The field annotations stay text (`from __future__ import annotations`): loading reads
`str(field.type)` ("int", "list[str]", …) to parse and check each value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The static/ folder beside the kaamos_sfu package (this file is kaamos_sfu/config/schema.py).
DEFAULT_STATIC_DIR = Path(__file__).resolve().parents[2] / "static"
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
