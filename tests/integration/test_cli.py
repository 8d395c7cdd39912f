"""The kaamos-sfu command, run as a real subprocess (`python -m kaamos_sfu`)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from cli_support import TIMEOUT, clean_env, poll_health, start_server, tls_args, write_config
from ports import free_port

from kaamos_sfu.web.auth import verify_bearer


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kaamos_sfu", *args],
        check=False,  # the caller checks the exit status
        cwd=tmp_path,  # so that no ./config.toml is picked up by accident
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def test_token_prints_only_a_verifiable_jwt(tmp_path: Path) -> None:
    """`token --sub bot` prints one JWT signed with the secret the server will load."""
    config = write_config(tmp_path)
    result = run(tmp_path, "token", "--sub", "bot", "--expires-in", "600", "--config", str(config))
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert result.stdout == token + "\n"
    secret = (tmp_path / "state" / "api_secret").read_text().strip()
    assert verify_bearer(secret, f"Bearer {token}") == "bot"
    assert token not in result.stderr and secret not in result.stderr


def test_check_config_reports_bad_key(tmp_path: Path) -> None:
    """check-config on a file with an unknown key exits 2 and names the key."""
    config = write_config(tmp_path, extra="[rooms]\nmax_peer = 4\n")
    result = run(tmp_path, "check-config", "--config", str(config))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("kaamos-sfu: ")
    assert "rooms.max_peer" in result.stderr


def test_check_config_ok_and_env_errors(tmp_path: Path) -> None:
    """check-config prints ok for a good file, and the serve command exits 2 on config errors."""
    config = write_config(tmp_path)
    result = run(tmp_path, "check-config", "--config", str(config))
    assert (result.returncode, result.stdout) == (0, "ok\n")
    result = run(tmp_path, "--config", str(config), "--port", "70000")
    assert result.returncode == 2
    assert "server.port" in result.stderr


def test_serve_answers_health_then_stops(tmp_path: Path) -> None:
    """The default command serves /health on the configured port and exits on SIGTERM."""
    port = free_port()
    config = write_config(tmp_path, port=port)
    proc = start_server(tmp_path, "--config", str(config))
    try:
        body = poll_health(port, proc)
        assert body["status"] == "ok"
    finally:
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, stderr
    assert stdout == ""
    events = [json.loads(line) for line in stderr.splitlines()]
    listening = [e for e in events if e["event"] == "listening"]
    assert len(listening) == 1
    assert listening[0]["port"] == port
    assert listening[0]["public_url"] == f"http://localhost:{port}"
    assert any(e["event"] == "http request" and e["path"] == "/health" for e in events)


def test_set_overrides_env_and_host_port_override_set(tmp_path: Path) -> None:
    """`--set` beats KAAMOS_* variables, and --port beats --set server.port."""
    config = write_config(tmp_path)
    env = clean_env() | {"KAAMOS_ROOMS_MAX_ROOMS": "0"}
    args = [sys.executable, "-m", "kaamos_sfu", "check-config", "--config", str(config)]
    bad = subprocess.run(
        args, check=False, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=TIMEOUT
    )
    assert bad.returncode == 2 and "rooms.max_rooms" in bad.stderr
    good = subprocess.run(
        [*args, "--set", "rooms.max_rooms=5"],
        check=False,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert (good.returncode, good.stdout) == (0, "ok\n"), good.stderr
    # Were --set applied after --port, this would start a server on 8080 (and time out).
    result = run(tmp_path, "--config", str(config), "--set", "server.port=8080", "--port", "70000")
    assert result.returncode == 2 and "server.port" in result.stderr


def test_check_config_checks_files(tmp_path: Path) -> None:
    """check-config reports what create_app would refuse: a missing static_dir, a kept
    API secret that is too short, TLS files that are missing or do not load."""
    config = write_config(tmp_path)
    result = run(
        tmp_path, "check-config", "--config", str(config), "--set", "server.static_dir=nope"
    )
    assert result.returncode == 2 and "server.static_dir" in result.stderr
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "api_secret").write_text("short\n")
    result = run(tmp_path, "check-config", "--config", str(config))
    assert result.returncode == 2 and "at least 32 characters" in result.stderr
    (tmp_path / "state" / "api_secret").write_text("x" * 40)
    (tmp_path / "junk.pem").write_text("not a certificate")
    for cert, key in (("absent.pem", "absent.pem"), ("junk.pem", "junk.pem")):
        result = run(tmp_path, "check-config", "--config", str(config), *tls_args(cert, key))
        assert result.returncode == 2 and "server.tls_cert_file" in result.stderr, result.stderr
    result = run(tmp_path, "check-config", "--config", str(config), "--set", "auth.api_secret=s")
    assert result.returncode == 2 and "auth.api_secret" in result.stderr
