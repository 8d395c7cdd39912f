"""ICE servers handed to a joining client, with TURN REST credentials made per join.

TURN REST (draft-uberti-behave-turn-rest, coturn's `use-auth-secret`): the SFU and the
TURN server share a secret; the username is "<expiry unix time>:<user>" and the password
is base64(HMAC-SHA1(secret, username)). The TURN server checks both without any call to
us, and a leaked credential stops working at its expiry.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

from ..config import IceConfig


def turn_rest_credential(secret: str, username: str) -> str:
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def ice_servers_for(ice: IceConfig, user: str, now: float | None = None) -> list[dict[str, Any]]:
    """The configured STUN/TURN servers, plus the TURN REST servers with fresh credentials."""
    servers = [dict(server) for server in ice.servers]
    if ice.turn_urls:
        expires = int(time.time() if now is None else now) + ice.turn_credential_ttl_seconds
        username = f"{expires}:{user}"
        servers.append(
            {
                "urls": list(ice.turn_urls),
                "username": username,
                "credential": turn_rest_credential(ice.turn_secret, username),
            }
        )
    return servers
