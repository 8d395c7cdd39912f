"""One factor for every wait of the tests, and the one poll loop.

KAAMOS_TEST_TIMEOUT_FACTOR=2 (on a slow or busy machine) doubles every bound the tests
put on a wait: for a message, a frame, a page, a process, a poll, and pytest-timeout's
per-test limit (tests/conftest.py). It never stretches what a test asserts about time: a
documented bound ("removed within 10 s") is checked against the clock as it is.
"""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import Awaitable, Callable

FACTOR = float(os.environ.get("KAAMOS_TEST_TIMEOUT_FACTOR") or "1")
if not FACTOR > 0:
    raise ValueError(f"KAAMOS_TEST_TIMEOUT_FACTOR must be above 0, not {FACTOR}")


def scaled(seconds: float) -> float:
    """`seconds` of waiting, on this machine."""
    return seconds * FACTOR


async def eventually(
    condition: Callable[[], bool | Awaitable[bool]],
    timeout: float = 10.0,
    what: str | Callable[[], str] = "",
    poll: float = 0.05,
) -> float:
    """Poll `condition()` (plain or async) until it holds; fail after `timeout` seconds
    (scaled). Returns the seconds it took. `what` (or what it returns) names the wait in
    the failure."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    deadline = start + scaled(timeout)
    while True:
        held = condition()
        if inspect.isawaitable(held):
            held = await held
        if held:
            return loop.time() - start
        if loop.time() > deadline:
            described = what() if callable(what) else what
            raise AssertionError(
                f"timed out after {scaled(timeout):g} s waiting for {described or condition}"
            )
        await asyncio.sleep(poll)
