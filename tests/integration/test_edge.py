"""The HTTP edge: trusted proxies, CORS on /api/, the WebSocket Origin check, and TLS."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from unittest import mock

import aiohttp
import pytest
from aiohttp.test_utils import make_mocked_request
from api_support import auth, error_of
from call_support import create_room
from cli_support import TIMEOUT, poll_health, start_server, tls_args, write_config
from ports import free_port

from kaamos_sfu.appkeys import API_SECRET
from kaamos_sfu.config import load_config
from kaamos_sfu.web.auth import issue_token
from kaamos_sfu.web.edge import Edge


def edge(*overrides: str) -> Edge:
    return Edge(load_config(None, env={}, overrides=overrides))


def request(peer: str, headers: dict[str, str] | None = None) -> Any:
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: (
        (peer, 40000) if name == "peername" else default
    )
    return make_mocked_request("GET", "/", headers=headers or {}, transport=transport)


@pytest.mark.parametrize(
    "proxies, peer, forwarded, client",
    [
        ("", "203.0.113.9", "198.51.100.1", "203.0.113.9"),  # no proxy trusted: the peer
        ("10.0.0.0/8", "203.0.113.9", "198.51.100.1", "203.0.113.9"),  # untrusted peer
        ("10.0.0.0/8", "10.0.0.2", "198.51.100.1", "198.51.100.1"),
        ("10.0.0.0/8", "10.0.0.2", "1.2.3.4, 198.51.100.1, 10.0.0.7", "198.51.100.1"),
        ("10.0.0.0/8", "10.0.0.2", "10.0.0.9", "10.0.0.9"),  # only proxies: the farthest
        ("10.0.0.0/8", "10.0.0.2", "", "10.0.0.2"),
        ("10.0.0.0/8", "10.0.0.2", "garbage, 198.51.100.1", "198.51.100.1"),
        ("10.0.0.0/8", "10.0.0.2", "198.51.100.1, garbage", "10.0.0.2"),
        ("::1", "::1", "2001:db8::5", "2001:db8::5"),
        ("10.0.0.0/8", "10.0.0.2", "198.51.100.1:5678", "198.51.100.1"),  # with a port
        ("10.0.0.0/8", "10.0.0.2", "[2001:db8::5]:5678", "2001:db8::5"),
        ("10.0.0.0/8", "10.0.0.2", "[2001:db8::5]", "2001:db8::5"),
    ],
)
def test_client_ip(proxies: str, peer: str, forwarded: str, client: str) -> None:
    """X-Forwarded-For is followed from the right only through trusted proxies; a client
    cannot pick its address by prepending to it."""
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    assert edge(f"server.trusted_proxies={proxies}").client_ip(request(peer, headers)) == client


@pytest.mark.parametrize(
    "settings, peer, headers, base",
    [
        ((), "203.0.113.9", {"Host": "meet.example.org"}, "http://meet.example.org"),
        (
            (),
            "203.0.113.9",
            {"Host": "a", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"},
            "http://a",
        ),
        (
            ("server.trusted_proxies=10.0.0.1",),
            "10.0.0.1",
            {"Host": "internal:8080", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "m.org"},
            "https://m.org",
        ),
        (
            ("server.public_url=https://meet.example.org/",),
            "203.0.113.9",
            {"Host": "other.example"},
            "https://meet.example.org",
        ),
        ((), "203.0.113.9", {"Host": "bad host/<x>"}, "http://localhost:8080"),
    ],
)
def test_base_url(settings: tuple[str, ...], peer: str, headers: dict[str, str], base: str) -> None:
    """Links use public_url, else the Host the request came to (forwarded by a trusted
    proxy only); a malformed host falls back to the configured default."""
    assert edge(*settings).base_url(request(peer, headers)) == base


async def test_room_link_through_a_trusted_proxy(make_config: Any, make_client: Any) -> None:
    """Behind a trusted proxy, without public_url, the room link uses X-Forwarded-Proto/Host."""
    client = await make_client(make_config(server={"trusted_proxies": ["127.0.0.1"]}))
    token = issue_token(client.app[API_SECRET], "bot")
    headers = auth(token) | {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "meet.example.org"}
    resp = await client.post("/api/rooms/create", headers=headers)
    body = await resp.json()
    assert body["url"] == f"https://meet.example.org/room/{body['room_id']}"


ALLOWED = "https://bot.example.org"


async def test_cors_preflight_and_headers(make_config: Any, make_client: Any) -> None:
    """An allowed origin gets a 204 preflight and CORS headers on answers, errors included;
    another origin's preflight is 403 in the error shape and its answers carry no CORS."""
    client = await make_client(make_config(api={"cors_origins": [ALLOWED]}))
    preflight = {
        "Origin": ALLOWED,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    resp = await client.options("/api/rooms/create", headers=preflight)
    assert resp.status == 204
    assert resp.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "POST" in resp.headers["Access-Control-Allow-Methods"]
    assert "Authorization" in resp.headers["Access-Control-Allow-Headers"]
    resp = await client.options(
        "/api/rooms/create", headers=preflight | {"Origin": "https://evil.example"}
    )
    assert await error_of(resp, 403) == "ORIGIN_NOT_ALLOWED"
    assert "Access-Control-Allow-Origin" not in resp.headers

    token = issue_token(client.app[API_SECRET], "bot")
    resp = await client.post("/api/rooms/create", headers=auth(token) | {"Origin": ALLOWED})
    assert resp.status == 201
    assert resp.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "Location" in resp.headers["Access-Control-Expose-Headers"]
    resp = await client.get("/api/rooms/AbCdEf1234", headers={"Origin": ALLOWED})
    assert await error_of(resp, 404) == "ROOM_NOT_FOUND"
    assert resp.headers["Access-Control-Allow-Origin"] == ALLOWED
    resp = await client.get("/api/rooms/AbCdEf1234", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in resp.headers


async def test_no_cors_by_default(client: Any) -> None:
    """With no cors_origins configured, no origin gets a preflight or CORS headers."""
    resp = await client.options(
        "/api/rooms/create",
        headers={
            "Origin": str(client.make_url("")).rstrip("/"),
            "Access-Control-Request-Method": "POST",
        },
    )
    assert await error_of(resp, 403) == "ORIGIN_NOT_ALLOWED"


async def test_websocket_origin_check(make_config: Any, make_client: Any) -> None:
    """The WebSocket accepts its own origin, listed origins and no Origin at all; any other
    origin is HTTP 403 with the JSON error shape, before the upgrade."""
    client = await make_client(make_config(signaling={"allowed_origins": [ALLOWED]}))
    room_id = await create_room(client)
    own = str(client.make_url("")).rstrip("/")
    for headers in ({}, {"Origin": own}, {"Origin": ALLOWED.upper()}):
        ws = await client.ws_connect(f"/ws/{room_id}", headers=headers)
        await ws.close()
    with pytest.raises(aiohttp.WSServerHandshakeError) as excinfo:
        await client.ws_connect(f"/ws/{room_id}", headers={"Origin": "https://evil.example"})
    assert excinfo.value.status == 403
    resp = await client.get(
        f"/ws/{room_id}",
        headers={
            "Origin": "null",
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        },
    )
    assert await error_of(resp, 403) == "ORIGIN_NOT_ALLOWED"


async def test_websocket_origin_is_public_url_when_set(make_config: Any, make_client: Any) -> None:
    """With public_url set, the page origin must be public_url's, not the Host reached."""
    client = await make_client(make_config(server={"public_url": "https://meet.example.org"}))
    room_id = await create_room(client)
    ws = await client.ws_connect(f"/ws/{room_id}", headers={"Origin": "https://meet.example.org"})
    await ws.close()
    own = str(client.make_url("")).rstrip("/")
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await client.ws_connect(f"/ws/{room_id}", headers={"Origin": own})


# A browser on a page at https://meet.example.org:443/room/… sends the origin as browsers
# serialize it, without the default port: Origin: https://meet.example.org.
MEET = "https://meet.example.org"
PROXY = {"trusted_proxies": ["127.0.0.1"]}


def forwarded(scheme: str, host: str) -> dict[str, str]:
    return {"X-Forwarded-Proto": scheme, "X-Forwarded-Host": host}


@pytest.mark.parametrize(
    "server, headers, origin, allowed",
    [
        ({"public_url": MEET}, {}, MEET, True),
        ({"public_url": f"{MEET}:443"}, {}, MEET, True),
        ({"public_url": "https://Meet.Example.ORG:443/"}, {}, MEET, True),
        # nginx's `proxy_set_header X-Forwarded-Host $host:$server_port` keeps the port
        (PROXY, forwarded("https", "meet.example.org:443"), MEET, True),
        (PROXY, forwarded("http", "meet.example.org:80"), "http://meet.example.org", True),
        # another port is another origin
        ({"public_url": MEET}, {}, f"{MEET}:8443", False),
        ({"public_url": f"{MEET}:8443"}, {}, MEET, False),
        (PROXY, forwarded("https", "meet.example.org:80"), MEET, False),
        # a Host with no origin is refused, not an error
        ({}, {"Host": "[1.2.3.4]"}, MEET, False),
        ({}, {"Host": "meet.example.org:99999"}, MEET, False),
    ],
)
async def test_websocket_origin_ignores_default_ports(
    make_config: Any,
    make_client: Any,
    server: dict[str, Any],
    headers: dict[str, str],
    origin: str,
    allowed: bool,
) -> None:
    """The server's own origin drops the scheme's default port, as browsers do: with
    public_url or a forwarded host ending in :443 (:80 for http) the page is let in."""
    client = await make_client(make_config(server=server))
    room_id = await create_room(client)
    headers = headers | {"Origin": origin}
    if allowed:
        ws = await client.ws_connect(f"/ws/{room_id}", headers=headers)
        await ws.close()
    else:
        with pytest.raises(aiohttp.WSServerHandshakeError) as excinfo:
            await client.ws_connect(f"/ws/{room_id}", headers=headers)
        assert excinfo.value.status == 403


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A throwaway certificate and key for 127.0.0.1, made with `cryptography`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kaamos test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def join_over_wss(port: int, context: ssl.SSLContext) -> str:
    """Signaling works over wss:// too: the error code a join to an unknown room gets."""
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"wss://127.0.0.1:{port}/ws/AAAAAAAAAA", ssl=context) as ws,
    ):
        await ws.send_json({"type": "join", "name": "A", "publish": []})
        reply = await ws.receive_json(timeout=TIMEOUT)
        return str(reply["code"])


def test_serves_https_from_cert_and_key(tmp_path: Path) -> None:
    """With tls_cert_file and tls_key_file the server speaks HTTPS and WSS with that
    certificate, and its default links are https."""
    cert, key = self_signed(tmp_path)
    port = free_port()
    config = write_config(tmp_path, port=port)
    proc = start_server(tmp_path, "--config", str(config), *tls_args(cert, key))
    try:
        context = ssl.create_default_context(cafile=str(cert))
        body = poll_health(port, proc, scheme="https", context=context)
        assert body["status"] == "ok"
        with pytest.raises(urllib.error.URLError):  # a client that does not trust it
            urllib.request.urlopen(f"https://127.0.0.1:{port}/health", timeout=TIMEOUT)
        assert asyncio.run(join_over_wss(port, context)) == "ROOM_NOT_FOUND"
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=TIMEOUT)
    assert '"public_url": "https://localhost:' in stderr
