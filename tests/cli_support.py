"""The kaamos-sfu command as a real subprocess (`python -m kaamos_sfu`): a config file,
an environment without KAAMOS_* variables, starting a server and waiting for /health."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from timing import scaled

REPO = Path(__file__).resolve().parent.parent
TIMEOUT = scaled(20)  # for a command to finish, a server to answer or to exit


def clean_env() -> dict[str, str]:
    """This environment without KAAMOS_* variables, with the repo importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAAMOS_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def write_config(tmp_path: Path, port: int = 8080, extra: str = "") -> Path:
    static_dir = tmp_path / "static"
    static_dir.mkdir(exist_ok=True)
    path = tmp_path / "test.toml"
    path.write_text(
        f"""
[server]
host = "127.0.0.1"
port = {port}
state_dir = '{tmp_path / "state"}'
static_dir = '{static_dir}'
[ice]
host_addresses = ["127.0.0.1"]
{extra}
"""
    )
    return path


def tls_args(cert: object, key: object) -> list[str]:
    return ["--set", f"server.tls_cert_file={cert}", "--set", f"server.tls_key_file={key}"]


def start_server(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    """`python -m kaamos_sfu ARGS` in the background; the caller stops it."""
    return subprocess.Popen(
        [sys.executable, "-m", "kaamos_sfu", *args],
        cwd=tmp_path,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def poll_health(
    port: int,
    proc: subprocess.Popen[str],
    scheme: str = "http",
    context: ssl.SSLContext | None = None,
) -> dict[str, object]:
    deadline = time.monotonic() + TIMEOUT
    url = f"{scheme}://127.0.0.1:{port}/health"
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the server exited early"
        try:
            with urllib.request.urlopen(url, timeout=1, context=context) as resp:
                assert resp.status == 200
                return json.loads(resp.read())  # type: ignore[no-any-return]
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.05)
    raise AssertionError("no answer on /health in time")
