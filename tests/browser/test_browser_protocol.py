"""The browser client's protocol modules under Node's test runner: the room lookup, the
reconnect policy (static/reconnect.js) table by table, and the whole client with fake
sockets and timers (tests/browser/test_browser_protocol.mjs)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from timing import scaled

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js")


def test_protocol_js_under_node() -> None:
    """Every case in test_browser_protocol.mjs passes."""
    script = Path(__file__).with_suffix(".mjs")
    result = subprocess.run(
        ["node", "--test", "--test-reporter=spec", str(script)],
        check=False,
        capture_output=True,
        text=True,
        timeout=scaled(60),
    )
    assert result.returncode == 0, result.stdout + result.stderr
