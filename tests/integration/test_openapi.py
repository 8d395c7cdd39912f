"""The OpenAPI document at /api/openapi.json: valid, complete, and true of the running API
(a bounded, derandomized schemathesis run against a real server)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

import pytest
import schemathesis
from aiohttp import web
from app_support import build_config
from hypothesis import HealthCheck, Phase, given, settings
from openapi_spec_validator import validate
from schemathesis import GenerationMode
from timing import scaled

from kaamos_sfu import __version__
from kaamos_sfu.app import create_app
from kaamos_sfu.appkeys import API_SECRET
from kaamos_sfu.config import Config
from kaamos_sfu.web.api import load_openapi
from kaamos_sfu.web.auth import issue_token

EXAMPLES_PER_OPERATION = 25


async def test_served_document_is_valid_openapi_3(client: Any) -> None:
    """GET /api/openapi.json serves a document that passes openapi-spec-validator."""
    resp = await client.get("/api/openapi.json")
    assert resp.status == 200 and resp.content_type == "application/json"
    document = await resp.json()
    validate(document)
    assert document["openapi"].startswith("3.0.")
    assert document["info"]["version"] == __version__
    room = document["components"]["schemas"]["Room"]
    assert room["properties"]["signaling_url"]["type"] == "string"
    assert "signaling_url" not in room["required"]  # optional (single-node servers omit it)


def test_every_route_is_documented(config: Config) -> None:
    """The document lists exactly the app's HTTP routes (the WebSocket and pages aside)."""
    app = create_app(config)
    served = {
        (route.resource.canonical, route.method.lower())
        for route in app.router.routes()
        if route.resource is not None
        and route.method not in ("HEAD", "*")
        and not route.resource.canonical.startswith(("/ws/", "/room/", "/static"))
        and route.resource.canonical != "/"
    }
    paths = load_openapi()["paths"]
    documented = {
        (path, method) for path, item in paths.items() for method in item if method != "parameters"
    }
    assert served == documented


class ServerThread:
    """create_app(config) served on a free loopback port by its own loop in a thread, so
    that schemathesis's blocking HTTP client can call it."""

    def __init__(self, config: Config) -> None:
        self.app = create_app(config)
        self.port = 0
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._run(),))

    def __enter__(self) -> Self:
        self._thread.start()
        assert self._ready.wait(scaled(20)), "the server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(scaled(20))
        self._loop.close()

    async def _run(self) -> None:
        self._stop = asyncio.Event()
        runner = web.AppRunner(self.app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = runner.addresses[0][1]
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerThread]:
    # Limits high enough that the positive examples are all accepted.
    config = build_config(
        tmp_path,
        api={"rooms_per_minute_per_token": 10_000, "rooms_per_minute_per_creator": 10_000},
        rooms={"max_rooms": 10_000},
    )
    with ServerThread(config) as running:
        yield running


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_fuzz_api_against_its_schema(server: ServerThread, mode: GenerationMode) -> None:
    """A fixed number of derandomized examples per operation, valid and invalid: every
    response has a documented status, content type, headers and body shape, nothing is a
    5xx, invalid input is refused and valid input accepted, and a missing token is 401."""
    schema = schemathesis.openapi.from_dict(load_openapi())
    base_url = f"http://127.0.0.1:{server.port}"
    token = issue_token(server.app[API_SECRET], "fuzz")
    for result in schema.get_all_operations():
        operation = result.ok()
        has_input = operation.path_parameters or operation.method.upper() == "POST"
        if mode == GenerationMode.NEGATIVE and not has_input:
            continue  # a GET without parameters has no input to get wrong
        strategy = operation.as_strategy(generation_mode=mode)

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def check(case: schemathesis.Case) -> None:
            response = case.call(base_url=base_url, headers={"Authorization": f"Bearer {token}"})
            case.validate_response(response, headers={"Authorization": f"Bearer {token}"})

        check()
