"""The API secret on disk, and issuing and checking bearer tokens."""

from __future__ import annotations

import os
import stat
import time
from typing import Any

import jwt
import pytest

from kaamos_sfu.config import ConfigError
from kaamos_sfu.web.auth import (
    Unauthorized,
    issue_token,
    load_or_create_secret,
    verify_bearer,
)

SECRET = "s" * 64  # long enough for HS512 too, so PyJWT does not warn


def mode(path: Any) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_secret_created_once_private_and_reused(make_config: Any) -> None:
    """Without auth.api_secret a secret is created 0600 in a 0700 dir, then reused."""
    config = make_config()
    state_dir = config.server.state_dir
    assert not os.path.exists(state_dir)
    first = load_or_create_secret(config)
    path = os.path.join(state_dir, "api_secret")
    assert mode(state_dir) == 0o700
    assert mode(path) == 0o600
    assert len(first) >= 32
    assert os.listdir(state_dir) == ["api_secret"]  # no temporary file left behind
    assert load_or_create_secret(config) == first
    assert load_or_create_secret(make_config()) == first  # a second process reads the same


def test_existing_secret_file_is_not_replaced(make_config: Any) -> None:
    """A secret already in state_dir is used as it is (whitespace stripped)."""
    config = make_config()
    os.makedirs(config.server.state_dir)
    path = os.path.join(config.server.state_dir, "api_secret")
    with open(path, "w") as f:
        f.write(SECRET + "\n")
    os.chmod(path, 0o600)
    assert load_or_create_secret(config) == SECRET


def test_configured_secret_wins_and_writes_nothing(make_config: Any) -> None:
    """auth.api_secret is used as is and no file is created."""
    config = make_config(auth={"api_secret": SECRET})
    assert load_or_create_secret(config) == SECRET
    assert not os.path.exists(config.server.state_dir)


def test_short_configured_secret_is_rejected(make_config: Any) -> None:
    """An api_secret shorter than 32 characters is a config error naming the key."""
    with pytest.raises(ConfigError, match=r"auth\.api_secret"):
        load_or_create_secret(make_config(auth={"api_secret": "short"}))


def test_token_roundtrip() -> None:
    """A token issued with a secret verifies with it and yields its sub."""
    token = issue_token(SECRET, "bot-1", expires_in=60)
    assert verify_bearer(SECRET, f"Bearer {token}") == "bot-1"
    assert verify_bearer(SECRET, f"bearer  {token} ") == "bot-1"  # scheme is case-insensitive
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] == 60
    assert abs(claims["iat"] - time.time()) < 5


def test_token_without_expiry_has_no_exp() -> None:
    """expires_in=None issues a token with sub and iat only."""
    claims = jwt.decode(issue_token(SECRET, "bot"), SECRET, algorithms=["HS256"])
    assert set(claims) == {"sub", "iat"}


@pytest.mark.parametrize(
    "header, reason",
    [
        (None, "missing"),
        ("", "missing"),
        ("Basic dXNlcjpwYXNz", "Bearer"),
        ("Bearer", "Bearer"),
        ("Bearer not-a-token", "invalid"),
        (f"Bearer {issue_token('o' * 32, 'bot')}", "signature"),
        (f"Bearer {issue_token(SECRET, 'bot', expires_in=-1)}", "expired"),
        (f"Bearer {jwt.encode({'iat': 1}, SECRET, algorithm='HS256')}", "sub"),
        (f"Bearer {jwt.encode({'sub': ''}, SECRET, algorithm='HS256')}", "sub"),
        (f"Bearer {jwt.encode({'sub': 'bot'}, '', algorithm='none')}", "invalid"),
        (f"Bearer {jwt.encode({'sub': 'bot'}, SECRET, algorithm='HS512')}", "invalid"),
    ],
)
def test_bad_headers_are_unauthorized(header: str | None, reason: str) -> None:
    """Each kind of bad header raises Unauthorized with a message saying why."""
    with pytest.raises(Unauthorized, match=reason):
        verify_bearer(SECRET, header)
