"""Structured JSON log lines."""

from __future__ import annotations

import json
import logging
import re
import sys
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from call_support import clients, eventually

from kaamos_sfu.appkeys import API_SECRET, ROOMS
from kaamos_sfu.logs import CHATTY_LIBRARIES, AccessLogger, JsonFormatter, setup_logging
from kaamos_sfu.web.auth import issue_token
from kaamos_sfu.web.edge import CLIENT_IP


def record(msg: str, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("kaamos_sfu.test", logging.INFO, __file__, 1, msg, (), None)
    rec.__dict__.update(extra)
    return rec


def test_line_has_standard_fields_and_extras() -> None:
    """A line is one JSON object with ts, level, logger, event and the extra fields."""
    line = JsonFormatter().format(record("room created", room_id="AbCdEf1234", sub="bot"))
    assert "\n" not in line
    data = json.loads(line)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", data.pop("ts"))
    assert data == {
        "level": "info",
        "logger": "kaamos_sfu.test",
        "event": "room created",
        "room_id": "AbCdEf1234",
        "sub": "bot",
    }


class Opaque:
    def __str__(self) -> str:
        return "opaque"


def test_unencodable_extra_and_exception() -> None:
    """Values JSON cannot encode are written with str(), and exceptions add exc."""
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        rec = record("failed", thing=Opaque())
        rec.exc_info = sys.exc_info()
    line = JsonFormatter().format(rec)
    assert "\n" not in line
    data = json.loads(line)
    assert data["thing"] == "opaque"
    assert "ValueError: bad" in data["exc"]


def test_setup_logging_writes_json_to_stderr_once(capsys: pytest.CaptureFixture[str]) -> None:
    """setup_logging sends loggers to stderr as JSON; calling it twice does not double lines."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        setup_logging("warning")
        setup_logging("info")
        logging.getLogger("kaamos_sfu.x").info("hello", extra={"n": 1})
        logging.getLogger("kaamos_sfu.x").debug("hidden")
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        logging.captureWarnings(False)
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0])["n"] == 1


def test_access_log_has_no_query_string_or_headers(caplog: pytest.LogCaptureFixture) -> None:
    """The access log line names the path only: no query string, no Authorization."""
    request = make_mocked_request(
        "GET",
        "/api/rooms/AbCdEf1234?token=query-secret",
        headers={"Authorization": "Bearer header-secret", "User-Agent": "bot"},
    )
    request[CLIENT_IP] = "198.51.100.7"
    response = web.Response(status=404)
    logger = logging.getLogger("test.access")
    with caplog.at_level(logging.INFO, logger="test.access"):
        AccessLogger(logger, "").log(request, response, 0.0123)
    (line,) = caplog.records
    fields = vars(line)
    assert line.getMessage() == "http request"
    assert fields["path"] == "/api/rooms/AbCdEf1234"
    assert fields["status"] == 404 and fields["remote"] == "198.51.100.7"
    assert fields["duration_ms"] == 12.3
    text = JsonFormatter().format(line)
    assert "secret" not in text and "Bearer" not in text


async def test_a_call_logs_its_events_without_sdp_or_secrets(
    make_config: Any, make_client: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """At info level a call logs room created, peer joined and peer left (with the reason)
    as JSON lines, and never an SDP body, ICE password, token or API secret; the ICE and
    DTLS libraries stay quiet."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        setup_logging("info")
        http = await make_client(make_config())
        token = issue_token(http.app[API_SECRET], "bot")
        resp = await http.post("/api/rooms/create", headers={"Authorization": f"Bearer {token}"})
        room_id = (await resp.json())["room_id"]
        async with clients(http, room_id, 2) as (a, b):
            await b.wait_decoded((a.peer_id, "camera"), frames=3)
            await a.send({"type": "leave"})
            await eventually(lambda: http.app[ROOMS].peer_count == 1, what="A gone")
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        for name in CHATTY_LIBRARIES:
            logging.getLogger(name).setLevel(logging.NOTSET)
        logging.captureWarnings(False)
    err = capsys.readouterr().err
    events = [json.loads(line) for line in err.splitlines()]
    names = [e["event"] for e in events]
    assert names.count("room created") == 1 and names.count("peer joined") == 2
    left = [e for e in events if e["event"] == "peer left"]
    assert {e["reason"] for e in left} >= {"left"}
    assert all(e["room_id"] == room_id for e in left)
    assert not [e for e in events if e["logger"].startswith(CHATTY_LIBRARIES)]
    for secret in ("v=0", "a=ice-pwd", "a=fingerprint", token, http.app[API_SECRET]):
        assert secret not in err
