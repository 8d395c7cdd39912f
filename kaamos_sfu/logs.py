"""Structured logs: one JSON object per line on stderr.

Every line has `ts` (RFC 3339, UTC, milliseconds), `level`, `logger` and `event` (the log
message). Callers add fields with `extra`, and keep the message a short fixed phrase so
that lines can be grouped by it:

    log.info("room created", extra={"room_id": record.room_id, "sub": sub})

Never put tokens, secrets or SDP in a message or an extra field. Values that JSON cannot
encode are written with `str()`. An exception logged with `log.exception` adds `exc`.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

from .web.edge import CLIENT_IP

# Attributes every LogRecord has; anything else on a record came from `extra`.
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, tz=UTC)
        line: dict[str, Any] = {
            "ts": ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and key not in line:
                line[key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


# Libraries that log every ICE check or DTLS step at info: at info level that is noise (one
# line per candidate pair), so they speak from warning up unless log.level is debug.
CHATTY_LIBRARIES = ("aioice", "aiortc")


def setup_logging(level: str) -> None:
    """Send every logger to stderr as JSON lines at `level` (debug, info, warning, error)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in root.handlers[:]:  # calling it twice must not double every line
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in CHATTY_LIBRARIES:
        logging.getLogger(name).setLevel(logging.DEBUG if level == "debug" else logging.WARNING)
    logging.captureWarnings(True)


class AccessLogger(AbstractAccessLogger):
    """aiohttp's access log as structured fields (pass as `access_log_class`).

    Only the path is logged, not the query string, which may carry things not meant for
    logs, and no header (Authorization holds the bearer token). `remote` is the client's
    address, through trusted proxies (edge.py).
    """

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        self.logger.info(
            "http request",
            extra={
                "method": request.method,
                "path": request.path,
                "status": response.status,
                "bytes_sent": response.body_length,
                "duration_ms": round(time * 1000, 1),
                "remote": request.get(CLIENT_IP, request.remote),
            },
        )
