"""Structured JSON log lines (what a real call logs: tests/integration/test_call.py)."""

from __future__ import annotations

import json
import logging
import re
import sys

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from kaamos_sfu.logs import AccessLogger, JsonFormatter, setup_logging
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
