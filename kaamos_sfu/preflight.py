"""Checks of the configuration that need the file system: the static files, the TLS
certificate and key, and a kept API secret. `create_app` and `kaamos-sfu check-config` run
them, so that check-config catches everything that would stop the server."""

from __future__ import annotations

import ssl

from .config import Config, ConfigError
from .web.auth import check_secret_file


def check_files(config: Config) -> None:
    """Raise ConfigError naming the key whose file is missing or unusable."""
    if not config.static_dir.is_dir():
        raise ConfigError(f"server.static_dir: no directory at {config.static_dir}")
    tls_context(config)
    check_secret_file(config)


def tls_context(config: Config) -> ssl.SSLContext | None:
    """The server's TLS context from server.tls_cert_file/tls_key_file, or None for HTTP."""
    cert, key = config.server.tls_cert_file, config.server.tls_key_file
    if not cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except FileNotFoundError as exc:
        raise ConfigError(f"server.tls_cert_file/tls_key_file: no file {exc.filename}") from exc
    except (OSError, ssl.SSLError) as exc:
        # Wrong format, or a key that does not match the certificate.
        raise ConfigError(
            f"server.tls_cert_file/tls_key_file: cannot load {cert} and {key}: {exc}"
        ) from exc
    return context
