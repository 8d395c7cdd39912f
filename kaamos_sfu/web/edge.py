"""What the HTTP edge believes about a request, and which browser origins it lets in.

Behind a reverse proxy the TCP peer is the proxy: the client's address, the scheme and the
host come from X-Forwarded-For/-Proto/-Host, but only when the peer is one of
`server.trusted_proxies`; from anyone else those headers are ignored (they are trivial to
forge). The client address keys the per-IP rate limits and the access log; the scheme and
host build links when `server.public_url` is not set.

Browsers: /api/ answers CORS only for `api.cors_origins`; the WebSocket accepts pages
from the server's own origin, the origins of the cluster's live nodes (a page served by one
node signals to the node that holds the room) and `signaling.allowed_origins` (a client
without an Origin header is not a browser page and is let in).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from ..config import Config, origin_of

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

CLIENT_IP = web.RequestKey("client_ip", str)  # the client's address, set by the middleware
_HOST_RE = re.compile(r"^[A-Za-z0-9.\-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")
CORS_METHODS = "GET, POST, DELETE"
CORS_HEADERS = "Authorization, Content-Type"
CORS_EXPOSED = "Location, Retry-After"
CORS_MAX_AGE = "600"


class Edge:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.proxies: tuple[IpNetwork, ...] = tuple(
            ipaddress.ip_network(p, strict=False) for p in config.server.trusted_proxies
        )
        self.cors_origins = frozenset(o.lower() for o in config.api.cors_origins)
        self.ws_origins = frozenset(o.lower() for o in config.signaling.allowed_origins)

    def is_trusted(self, address: str | None) -> bool:
        ip = _ip(address)
        return ip is not None and any(ip in network for network in self.proxies)

    def client_ip(self, request: web.BaseRequest) -> str:
        """The client's address: the peer's, or the nearest untrusted X-Forwarded-For hop
        when the peer (and each hop after it) is a trusted proxy."""
        address = request.remote or ""
        if not self.is_trusted(address):
            return address
        hops = [
            h.strip() for v in request.headers.getall("X-Forwarded-For", []) for h in v.split(",")
        ]
        for hop in reversed([_without_port(h) for h in hops if h]):
            if _ip(hop) is None:
                return address  # garbage in the header: the last proxy is all we know
            address = hop
            if not self.is_trusted(hop):
                break
        return address

    def base_url(self, request: web.BaseRequest) -> str:
        """scheme://host the client reached us at: public_url when set, else the request's
        (through a trusted proxy's X-Forwarded-Proto/-Host)."""
        if self.config.server.public_url:
            return self.config.public_url
        scheme, host = request.scheme, request.host
        if self.is_trusted(request.remote):
            scheme = _first(request.headers.get("X-Forwarded-Proto")) or scheme
            host = _first(request.headers.get("X-Forwarded-Host")) or host
        if scheme not in ("http", "https") or not _HOST_RE.match(host):
            return self.config.public_url  # a malformed Host: do not echo it into links
        return f"{scheme}://{host}"

    def websocket_origin_allowed(self, request: web.Request, node_origins: set[str]) -> bool:
        """`node_origins`: the cluster's live nodes (a page served by one signals to
        another)."""
        origin = request.headers.get("Origin")
        if origin is None:
            return True  # not a browser page: browsers always send Origin on a WebSocket
        origin = origin.lower()
        return (
            origin in self.ws_origins
            or origin == origin_of(self.base_url(request))
            or origin in node_origins
        )

    def middleware(self) -> Middleware:
        """The app's middleware: the client address on every request, CORS for /api/."""

        @web.middleware
        async def edge(
            request: web.Request,
            handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
        ) -> web.StreamResponse:
            return await self.handle(request, handler)

        return edge

    async def handle(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        request[CLIENT_IP] = self.client_ip(request)
        if not request.path.startswith("/api/") or "Origin" not in request.headers:
            return await handler(request)
        origin = request.headers["Origin"]
        allowed = origin.lower() in self.cors_origins
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            if not allowed:
                return origin_refused(origin)
            return web.Response(
                status=204,
                headers={
                    "Access-Control-Allow-Origin": origin,
                    "Access-Control-Allow-Methods": CORS_METHODS,
                    "Access-Control-Allow-Headers": CORS_HEADERS,
                    "Access-Control-Max-Age": CORS_MAX_AGE,
                    "Vary": "Origin",
                },
            )
        response = await handler(request)
        response.headers["Vary"] = "Origin"  # the answer differs by origin: caches must know
        if allowed:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Expose-Headers"] = CORS_EXPOSED
        return response


def origin_refused(origin: str) -> web.Response:
    """403 in the API's error shape, for a browser page from an origin we do not serve."""
    body = {"error": {"code": "ORIGIN_NOT_ALLOWED", "message": f"origin {origin} is not allowed"}}
    return web.json_response(body, status=403)


def _ip(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text or "")
    except ValueError:
        return None


def _without_port(hop: str) -> str:
    """An X-Forwarded-For entry without the port some balancers add: 1.2.3.4:5678 and
    [2001:db8::5]:5678 (a bare IPv6 address has colons too, so only brackets mark a port)."""
    if hop.startswith("["):
        return hop[1 : hop.find("]")] if "]" in hop else hop
    if hop.count(":") == 1:
        return hop.split(":")[0]
    return hop


def _first(value: str | None) -> str:
    """The first element of a comma-separated forwarded header (the client-facing proxy's)."""
    return value.split(",")[0].strip() if value else ""
