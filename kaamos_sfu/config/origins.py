"""Browser origins, scheme://host[:port]: the ones a config may list, and the origin of a URL
as a browser spells it in the Origin header (WHATWG URL: the default port is left out)."""

from __future__ import annotations

from urllib.parse import urlsplit

from yarl import URL


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
    """The origin of an http(s) URL as browsers send it: scheme and host lower-cased, IDN
    hosts in punycode, IPv6 hosts in brackets, 80 and 443 left out, no user, path or query.

    A URL that has no origin (no host, a port above 65535, brackets around no IPv6 address:
    a client's Host header can be any of these) gives itself lower-cased, which no browser
    sends as an Origin, rather than an exception."""
    try:
        return str(URL(url).origin())
    except ValueError:
        return url.lower()
