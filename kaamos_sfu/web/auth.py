"""Bearer tokens for the room API: the HS256 secret, issuing tokens and checking them.

Bots create and delete rooms with `Authorization: Bearer <jwt>`; the JWT carries `sub`
(who the bot is, logged with each room it creates), `iat` and optionally `exp`.
Tokens and the secret are never logged.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import stat
import tempfile
import time
from pathlib import Path
from typing import Any

import jwt

from ..config import MIN_SECRET_LENGTH, Config, ConfigError

log = logging.getLogger(__name__)

ALGORITHM = "HS256"
SECRET_FILE = "api_secret"


class Unauthorized(Exception):
    """The request carries no valid bearer token; the message says why."""


def load_or_create_secret(config: Config) -> str:
    """The configured secret, else the one kept in state_dir, created on first start.

    Generating it means a default install never has an open room API, and keeping it in
    a file means tokens survive restarts.
    """
    if config.auth.api_secret:  # its length is checked by config.validate
        return config.auth.api_secret
    path = Path(config.server.state_dir) / SECRET_FILE
    if not path.exists():
        _create_secret_file(path)
    return _read_secret_file(path)


def check_secret_file(config: Config) -> None:
    """Raise ConfigError if the API secret kept in state_dir exists but is unusable."""
    path = Path(config.server.state_dir) / SECRET_FILE
    if not config.auth.api_secret and path.exists():
        _read_secret_file(path)


def _create_secret_file(path: Path) -> None:
    state_dir = path.parent
    try:
        if not state_dir.exists():
            state_dir.mkdir(parents=True, mode=0o700)
            state_dir.chmod(0o700)  # mkdir's mode is masked by the umask
        fd, tmp_name = tempfile.mkstemp(dir=state_dir, prefix=".api_secret.")  # 0600
        try:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(48) + "\n")
                f.flush()
                os.fsync(f.fileno())
            # link() never replaces an existing file: if another process (the server and
            # `kaamos-sfu token` started together) won the race, both use its secret.
            try:
                os.link(tmp_name, path)
            except FileExistsError:
                pass
            except OSError:  # a file system without hard links
                os.replace(tmp_name, path)
        finally:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)
    except OSError as exc:
        raise ConfigError(f"server.state_dir: cannot create {path}: {exc.strerror}") from exc
    log.info("generated a new API secret", extra={"path": str(path)})


def _read_secret_file(path: Path) -> str:
    try:
        secret = path.read_text().strip()
        mode = path.stat().st_mode
    except OSError as exc:
        raise ConfigError(f"server.state_dir: cannot read {path}: {exc.strerror}") from exc
    if len(secret.encode()) < MIN_SECRET_LENGTH:
        raise ConfigError(f"{path}: the API secret must be at least {MIN_SECRET_LENGTH} characters")
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("API secret file is readable by other users", extra={"path": str(path)})
    return secret


def issue_token(secret: str, sub: str, expires_in: float | None = None) -> str:
    """An HS256 JWT for `sub`, valid for `expires_in` seconds (forever when None)."""
    now = int(time.time())
    claims: dict[str, Any] = {"sub": sub, "iat": now}
    if expires_in is not None:
        claims["exp"] = now + math.ceil(expires_in)
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_bearer(secret: str, authorization_header: str | None) -> str:
    """The token's `sub` if the header holds a valid bearer token, else raise Unauthorized."""
    if not authorization_header:
        raise Unauthorized("missing Authorization header")
    scheme, _, token = authorization_header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:  # the scheme is case-insensitive (RFC 9110)
        raise Unauthorized("Authorization header must be 'Bearer <token>'")
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["sub"]})
    except jwt.ExpiredSignatureError:
        raise Unauthorized("token expired") from None
    except jwt.InvalidSignatureError:
        raise Unauthorized("token signature is invalid") from None
    except jwt.MissingRequiredClaimError:
        raise Unauthorized("token has no sub claim") from None
    except jwt.InvalidTokenError as exc:
        raise Unauthorized(f"invalid token: {exc}") from None
    sub = claims["sub"]
    if not isinstance(sub, str) or not sub:
        raise Unauthorized("token sub must be a non-empty string")
    return sub
