"""Loading the configuration: defaults, TOML, environment overrides and error messages."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest

from kaamos_sfu.config import DEFAULT_STATIC_DIR, Config, ConfigError, load_config, origin_of

REPO_CONFIG = Path(__file__).resolve().parents[2] / "config.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_defaults() -> None:
    """With no file and no environment every setting has its documented default."""
    config = load_config(None, env={})
    assert config == Config()
    assert (config.server.host, config.server.port) == ("0.0.0.0", 8080)
    assert config.rooms.max_peers == 4 and config.rooms.expire_after_hours == 24.0
    assert config.media.video_codecs == ["VP8", "H264"]
    assert config.ice.host_addresses == [] and config.ice.servers == []
    assert config.public_url == "http://localhost:8080"
    assert config.static_dir == DEFAULT_STATIC_DIR


def test_repo_config_toml_is_exactly_the_defaults() -> None:
    """The documented config.toml loads to Config() unchanged."""
    assert load_config(REPO_CONFIG, env={}) == Config()


def test_repo_config_toml_lists_every_setting() -> None:
    """config.toml names every section and key of Config, and nothing else, so it cannot drift."""
    with open(REPO_CONFIG, "rb") as f:
        data = tomllib.load(f)
    config = Config()
    expected = {
        section.name: {f.name for f in dataclasses.fields(getattr(config, section.name))}
        for section in dataclasses.fields(config)
    }
    assert {name: set(values) for name, values in data.items()} == expected


def test_toml_overrides(tmp_path: Path) -> None:
    """Values in the file replace defaults; ints are accepted for floats."""
    path = write(
        tmp_path,
        """
        [server]
        port = 9000
        public_url = "https://meet.example.org/"
        [rooms]
        expire_after_hours = 2
        [ice]
        servers = [{urls = "stun:stun.example.org:3478"}]
        [media]
        video_codecs = ["H264"]
        """,
    )
    config = load_config(path, env={})
    assert config.server.port == 9000
    assert config.public_url == "https://meet.example.org"
    assert config.rooms.expire_after_hours == 2.0
    assert isinstance(config.rooms.expire_after_hours, float)
    assert config.ice.servers == [{"urls": "stun:stun.example.org:3478"}]
    assert config.media.video_codecs == ["H264"]
    assert config.rooms.max_peers == 4  # untouched


def test_env_overrides_win_over_file(tmp_path: Path) -> None:
    """KAAMOS_<SECTION>_<KEY> wins over the file; lists are comma-separated."""
    path = write(tmp_path, "[server]\nport = 9000\nhost = '127.0.0.1'\n")
    env = {
        "KAAMOS_SERVER_PORT": "9100",
        "KAAMOS_ROOMS_EXPIRE_AFTER_HOURS": "0.5",
        "KAAMOS_ICE_HOST_ADDRESSES": "10.0.0.5, 192.168.1.2,",
        "KAAMOS_MEDIA_VIDEO_CODECS": "H264,VP8",
        "KAAMOS_LOG_LEVEL": "debug",
    }
    config = load_config(path, env=env)
    assert config.server.port == 9100
    assert config.server.host == "127.0.0.1"  # from the file, no env override
    assert config.rooms.expire_after_hours == 0.5
    assert config.ice.host_addresses == ["10.0.0.5", "192.168.1.2"]
    assert config.media.video_codecs == ["H264", "VP8"]
    assert config.log.level == "debug"


def test_env_ice_servers_is_json() -> None:
    """KAAMOS_ICE_SERVERS is a JSON list of RTCIceServer objects."""
    env = {"KAAMOS_ICE_SERVERS": '[{"urls": ["turn:t.example.org"], "username": "u"}]'}
    config = load_config(None, env=env)
    assert config.ice.servers == [{"urls": ["turn:t.example.org"], "username": "u"}]


@pytest.mark.parametrize(
    "text, names",
    [
        ("[nope]\nx = 1\n", "[nope]"),
        ("[server]\nprot = 1\n", "server.prot"),
        ("server = 1\n", "[server]"),
        ("[server]\nport = '8080'\n", "server.port"),
        ("[rooms]\nmax_peers = true\n", "rooms.max_peers"),
        ("[rooms]\nexpire_after_hours = 'soon'\n", "rooms.expire_after_hours"),
        ("[ice]\nhost_addresses = '127.0.0.1'\n", "ice.host_addresses"),
        ("[ice]\nservers = ['stun:x']\n", "ice.servers"),
        ("[media]\nvideo_codecs = [1]\n", "media.video_codecs"),
        ("[server\n", "invalid TOML"),
    ],
)
def test_file_errors_name_the_key(tmp_path: Path, text: str, names: str) -> None:
    """Unknown sections and keys, wrong types and bad TOML are errors naming the culprit."""
    with pytest.raises(ConfigError) as excinfo:
        load_config(write(tmp_path, text), env={})
    assert names in str(excinfo.value)


@pytest.mark.parametrize(
    "env, names",
    [
        ({"KAAMOS_SERVER_PORT": "eighty"}, "KAAMOS_SERVER_PORT"),
        ({"KAAMOS_ROOMS_EXPIRE_AFTER_HOURS": "x"}, "KAAMOS_ROOMS_EXPIRE_AFTER_HOURS"),
        ({"KAAMOS_ICE_SERVERS": "stun:x"}, "KAAMOS_ICE_SERVERS"),
        ({"KAAMOS_ICE_SERVERS": '{"urls": "stun:x"}'}, "ice.servers"),
    ],
)
def test_env_errors_name_the_variable(env: dict[str, str], names: str) -> None:
    """A malformed environment value is an error naming the variable or key."""
    with pytest.raises(ConfigError, match=names):
        load_config(None, env=env)


@pytest.mark.parametrize(
    "env, key",
    [
        ({"KAAMOS_SERVER_PORT": "0"}, "server.port"),
        ({"KAAMOS_SERVER_PORT": "65536"}, "server.port"),
        ({"KAAMOS_SERVER_PUBLIC_URL": "meet.example.org"}, "server.public_url"),
        ({"KAAMOS_ROOMS_MAX_PEERS": "1"}, "rooms.max_peers"),
        ({"KAAMOS_ROOMS_EXPIRE_AFTER_HOURS": "0"}, "rooms.expire_after_hours"),
        ({"KAAMOS_ROOMS_PEER_TIMEOUT_SECONDS": "-1"}, "rooms.peer_timeout_seconds"),
        ({"KAAMOS_SIGNALING_MAX_MESSAGE_BYTES": "100"}, "signaling.max_message_bytes"),
        ({"KAAMOS_SIGNALING_MAX_BAD_MESSAGES": "0"}, "signaling.max_bad_messages"),
        ({"KAAMOS_MEDIA_VIDEO_CODECS": ""}, "media.video_codecs"),
        ({"KAAMOS_MEDIA_VIDEO_CODECS": "VP9"}, "media.video_codecs"),
        ({"KAAMOS_ICE_SERVERS": '[{"username": "u"}]'}, "ice.servers"),
        ({"KAAMOS_LOG_LEVEL": "verbose"}, "log.level"),
        ({"KAAMOS_CLUSTER_REDIS_URL": "localhost:6379"}, "cluster.redis_url"),
        ({"KAAMOS_CLUSTER_NODE_URL": "sfu2.example.org"}, "cluster.node_url"),
        ({"KAAMOS_CLUSTER_CAPACITY": "0"}, "cluster.capacity"),
        ({"KAAMOS_CLUSTER_HEARTBEAT_SECONDS": "0"}, "cluster.heartbeat_seconds"),
        ({"KAAMOS_CLUSTER_NODE_TTL_SECONDS": "3"}, "cluster.node_ttl_seconds"),
        ({"KAAMOS_CLUSTER_REDIS_TIMEOUT_SECONDS": "0"}, "cluster.redis_timeout_seconds"),
    ],
)
def test_validation_errors(env: dict[str, str], key: str) -> None:
    """Values of the right type but out of range fail validation naming the key."""
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(None, env=env)


@pytest.mark.parametrize(
    ("env", "node_url", "signaling_url"),
    [
        ({}, "http://localhost:8080", "ws://localhost:8080"),
        (
            {"KAAMOS_SERVER_PUBLIC_URL": "https://meet.example.org/"},
            "https://meet.example.org",
            "wss://meet.example.org",
        ),
        (
            {
                "KAAMOS_CLUSTER_NODE_URL": "https://meet.example.org/w/{port}/",
                "KAAMOS_SERVER_PORT": "8081",
            },
            "https://meet.example.org/w/8081",
            "wss://meet.example.org/w/8081",
        ),
    ],
)
def test_node_and_signaling_urls(env: dict[str, str], node_url: str, signaling_url: str) -> None:
    """The node's URL is cluster.node_url with {port} filled, else server.public_url; its
    WebSocket base swaps http for ws."""
    config = load_config(None, env=env)
    assert (config.node_url, config.signaling_url) == (node_url, signaling_url)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    """A config path that cannot be read is a ConfigError, not a traceback."""
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "absent.toml", env={})


def test_precedence_file_env_command_line(tmp_path: Path) -> None:
    """Each layer wins over the one before: defaults < file < env < --set overrides."""
    path = write(tmp_path, "[rooms]\nmax_rooms = 7\nmax_peers = 3\n[log]\nlevel = 'warning'\n")
    env = {"KAAMOS_ROOMS_MAX_ROOMS": "8", "KAAMOS_LOG_LEVEL": "error"}
    config = load_config(path, env=env, overrides=["rooms.max_rooms=9"])
    assert config.rooms.max_rooms == 9  # file, env and command line: the command line
    assert config.log.level == "error"  # file and env: env
    assert config.rooms.max_peers == 3  # file only
    assert config.rooms.expire_after_hours == 24.0  # nothing: the default


def test_overrides_parse_like_env() -> None:
    """--set values are written as env values: lists comma-separated, ice.servers JSON,
    and the text after the first = is the value."""
    config = load_config(
        None,
        env={},
        overrides=[
            "signaling.allowed_origins=https://a.example.org, https://b.example.org",
            'ice.servers=[{"urls": "stun:s.example.org"}]',
            "auth.api_secret=" + "k=" * 20,
            "server.trusted_proxies=127.0.0.1,10.0.0.0/8",
        ],
    )
    assert config.signaling.allowed_origins == ["https://a.example.org", "https://b.example.org"]
    assert config.ice.servers == [{"urls": "stun:s.example.org"}]
    assert config.auth.api_secret == "k=" * 20
    assert config.server.trusted_proxies == ["127.0.0.1", "10.0.0.0/8"]


@pytest.mark.parametrize(
    "override, names",
    [
        ("rooms.max_rooms", "expected section.key=value"),
        ("max_rooms=3", "expected section.key=value"),
        ("nope.key=1", "[nope]"),
        ("rooms.max_room=3", "rooms.max_room"),
        ("rooms.max_rooms=many", "--set rooms.max_rooms=many"),
        ("rooms.max_rooms=0", "rooms.max_rooms"),
    ],
)
def test_override_errors_name_the_key(override: str, names: str) -> None:
    """A malformed, unknown or bad --set value is an error naming it."""
    with pytest.raises(ConfigError) as excinfo:
        load_config(None, env={}, overrides=[override])
    assert names in str(excinfo.value)


def test_unknown_env_setting_is_an_error() -> None:
    """A KAAMOS_<SECTION>_* variable that names no key stops the start; other KAAMOS_*
    variables (not settings) are left alone."""
    with pytest.raises(ConfigError, match="KAAMOS_ROOMS_MAX_ROOM:"):
        load_config(None, env={"KAAMOS_ROOMS_MAX_ROOM": "3"})
    assert load_config(None, env={"KAAMOS_TEST_TIMEOUT_FACTOR": "2"}) == Config()


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["server.tls_cert_file=/c.pem"], "server.tls_cert_file"),
        (["server.tls_key_file=/k.pem"], "server.tls_cert_file"),
        (["server.trusted_proxies=10.0.0.0/33"], "server.trusted_proxies"),
        (["server.trusted_proxies=proxy.example.org"], "server.trusted_proxies"),
        (["auth.api_secret=short"], "auth.api_secret"),
        (["api.rooms_per_minute_per_creator=0"], "api.rooms_per_minute_per_creator"),
        (["api.rooms_per_minute_per_token=0"], "api.rooms_per_minute_per_token"),
        (["api.cors_origins=https://a.example.org/path"], "api.cors_origins"),
        (["api.cors_origins=a.example.org"], "api.cors_origins"),
        (["api.cors_origins=https://a.example.org:99999"], "api.cors_origins"),
        (["rooms.max_rooms=0"], "rooms.max_rooms"),
        (["signaling.joins_per_minute_per_ip=0"], "signaling.joins_per_minute_per_ip"),
        (["signaling.allowed_origins=ftp://a.example.org"], "signaling.allowed_origins"),
        (["signaling.join_timeout_seconds=0"], "signaling.join_timeout_seconds"),
        (["signaling.answer_timeout_seconds=-5"], "signaling.answer_timeout_seconds"),
        (["rooms.expire_after_hours=inf"], "rooms.expire_after_hours"),
        (["rooms.expire_after_hours=1e308"], "rooms.expire_after_hours"),
        (["server.drain_seconds=nan"], "server.drain_seconds"),
        (['ice.servers=[{"urls": "stun.example.org"}]'], "ice.servers"),
        (['ice.servers=[{"urls": ["stun:a.example.org", 5]}]'], "ice.servers"),
    ],
)
def test_new_validation_errors(overrides: list[str], key: str) -> None:
    """TLS pairs, proxy networks, secret length, rate limits, caps and origins are checked."""
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(None, env={}, overrides=overrides)


def test_public_url_default_follows_tls() -> None:
    """Without public_url, the fallback base URL is https when TLS is served directly."""
    config = load_config(
        None, env={}, overrides=["server.tls_cert_file=c.pem", "server.tls_key_file=k.pem"]
    )
    assert config.public_url == "https://localhost:8080"


@pytest.mark.parametrize(
    "url, origin",
    [
        ("HTTPS://Meet.Example.ORG", "https://meet.example.org"),  # scheme and host lower-cased
        ("https://meet.example.org:443", "https://meet.example.org"),  # default ports dropped
        ("http://meet.example.org:80/", "http://meet.example.org"),
        ("https://meet.example.org:80", "https://meet.example.org:80"),  # not https's default
        ("http://meet.example.org:443", "http://meet.example.org:443"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),  # other ports kept
        ("https://meet.example.org/room/Xq3v9TbL2k?lang=ru#top", "https://meet.example.org"),
        ("https://sfu.example.org:8443/w/8081", "https://sfu.example.org:8443"),
        ("https://bot:secret@meet.example.org", "https://meet.example.org"),  # no user
        ("https://[2001:DB8::1]:443/room/x", "https://[2001:db8::1]"),  # IPv6 in brackets
        ("http://[::1]:8080", "http://[::1]:8080"),
        ("https://münchen.example", "https://xn--mnchen-3ya.example"),  # IDN as punycode
        # no origin (a forged Host header): itself, lower-cased, rather than an exception
        ("http://[1.2.3.4]", "http://[1.2.3.4]"),
        ("http://Meet.Example.org:99999", "http://meet.example.org:99999"),
    ],
)
def test_origin_of(url: str, origin: str) -> None:
    """The origin of a URL as browsers send it in the Origin header."""
    assert origin_of(url) == origin
