"""The `kaamos-sfu` command: run the server, issue an API token, or check a config file.

    kaamos-sfu [serve] [--config PATH] [--set SECTION.KEY=VALUE ...] [--host H] [--port P]
                       [--workers N]
    kaamos-sfu token --sub NAME [--expires-in SECONDS] [--config PATH] [--set ...]
    kaamos-sfu check-config [--config PATH] [--set ...]

Without --config, ./config.toml is read when it exists; KAAMOS_* variables apply on top,
then --set (repeatable; values written as in environment variables), then --host/--port.
Configuration errors print `kaamos-sfu: <message>` and exit with status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .config import Config, ConfigError, load_config, validate
from .logs import setup_logging
from .preflight import check_files, tls_context
from .web.auth import issue_token, load_or_create_secret

PROG = "kaamos-sfu"
DEFAULT_CONFIG = Path("config.toml")
COMMANDS = ("serve", "token", "check-config")
EXIT_CONFIG = 2


def main(argv: Sequence[str] | None = None) -> None:
    full_argv = _with_default_command(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(full_argv)
    args.argv = full_argv  # --workers starts each worker with the same command line
    try:
        code = args.run(args)
    except ConfigError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        code = EXIT_CONFIG
    if code:
        raise SystemExit(code)


def _with_default_command(argv: Sequence[str]) -> list[str]:
    # `kaamos-sfu --port 9000` means `kaamos-sfu serve --port 9000`.
    if argv and argv[0] in (*COMMANDS, "-h", "--help", "--version"):
        return list(argv)
    return ["serve", *argv]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Kaamos SFU video-call server.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(title="commands", required=True)

    serve = commands.add_parser("serve", help="run the server (the default command)")
    _add_config_option(serve)
    serve.add_argument("--host", help="address to listen on (overrides server.host)")
    serve.add_argument("--port", type=int, help="port to listen on (overrides server.port)")
    serve.add_argument(
        "--workers",
        type=_positive_int,
        default=1,
        metavar="N",
        help="run N server processes on ports PORT..PORT+N-1 sharing cluster.redis_url",
    )
    serve.set_defaults(run=_serve)

    token = commands.add_parser("token", help="print a bearer token for the room API")
    _add_config_option(token)
    token.add_argument("--sub", required=True, help="who the token is for, e.g. the bot name")
    token.add_argument(
        "--expires-in", type=_positive_float, metavar="SECONDS", help="default: never expires"
    )
    token.set_defaults(run=_token)

    check = commands.add_parser("check-config", help="load the configuration and report errors")
    _add_config_option(check)
    check.set_defaults(run=_check_config)
    return parser


def _add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", metavar="PATH", help=f"TOML config file (default: ./{DEFAULT_CONFIG} if any)"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one setting, e.g. --set rooms.max_rooms=100 (repeatable; wins over "
        "the file and KAAMOS_* variables; lists comma-separated, ice.servers as JSON)",
    )


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:  # also rejects nan
        raise argparse.ArgumentTypeError("must be positive")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _load(args: argparse.Namespace) -> Config:
    path = args.config
    if path is None and DEFAULT_CONFIG.is_file():
        path = str(DEFAULT_CONFIG)
    return load_config(path, overrides=args.overrides)


def _serve(args: argparse.Namespace) -> int:
    config = _load(args)
    if args.host is not None:
        config.server.host = args.host
    if args.port is not None:
        config.server.port = args.port
    validate(config)  # the command-line values too
    if args.workers > 1:
        from .cluster.workers import run_workers

        setup_logging(config.log.level)
        return run_workers(config, args.argv, args.workers)
    ssl_context = tls_context(config)
    setup_logging(config.log.level)
    install_uvloop()
    try:
        asyncio.run(_run(config, ssl_context))
    except OSError as exc:  # the port is taken, or the address is not ours
        where = f"{config.server.host}:{config.server.port}"
        print(f"{PROG}: cannot listen on {where}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


async def _run(config: Config, ssl_context: ssl.SSLContext | None) -> None:
    from .app import create_app  # imported here so that `token` does not load the media stack
    from .server import serve

    await serve(create_app(config), config, ssl_context)


def install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:  # optional: the asyncio loop works, only slower
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def _token(args: argparse.Namespace) -> int:
    sub = args.sub.strip()
    if not sub:
        print(f"{PROG}: --sub must not be empty", file=sys.stderr)
        return EXIT_CONFIG
    config = _load(args)
    setup_logging(config.log.level)  # to stderr: stdout carries only the token
    print(issue_token(load_or_create_secret(config), sub, args.expires_in))
    return 0


def _check_config(args: argparse.Namespace) -> int:
    check_files(_load(args))
    print("ok")
    return 0
