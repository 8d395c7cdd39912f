"""ICE consent freshness (RFC 7675) that a slow but live client survives.

aioice checks consent with one request every ~5 s, waits 0.5 s for the answer without
retransmitting, and closes the connection after 6 misses in a row: a phone whose answers
come 1-4 s late (a busy CPU, a radio waking up) was cut off while it was still in the call,
and the close was silent. Here every check is retransmitted as STUN does, an answer to any
check renews consent, and consent expires only after CONSENT_TIMEOUT seconds without one
(RFC 7675 section 5.1), not counting a time the server itself could not run; the expiry is
reported, so the room can say why the peer went.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

from aioice.ice import Connection

CHECK_INTERVAL = 5.0  # seconds between checks, randomized by ±20 % (RFC 7675 section 5.1)
# A check is sent at 0, 0.5, 1.5 and 3.5 s and given up at 7.5 s (STUN's doubling RTO).
CHECK_RETRANSMISSIONS = 3
CONSENT_TIMEOUT = 30.0  # without any answer: the client is gone or no longer wants media
# Woken this much later than planned, the server itself was stalled (no CPU, a long
# pause): the checks it could not send are not the client's fault, so the wait restarts.
STALL_SECONDS = 2.0


def keep_consent(connection: Connection, on_expired: Callable[[], None]) -> None:
    """Check consent on this (server-side) ICE connection as RFC 7675 asks, in place of
    aioice's own checks; call `on_expired` once if it expires. aioice starts the task when
    ICE completes and cancels it on close, as it does its own."""

    async def query_consent() -> None:
        await _check_consent(connection, on_expired)

    connection.query_consent = query_consent  # type: ignore[method-assign]


async def _check_consent(connection: Connection, on_expired: Callable[[], None]) -> None:
    last_answer = time.monotonic()
    checks: set[asyncio.Task[object]] = set()

    def check_done(task: asyncio.Task[object]) -> None:
        nonlocal last_answer
        checks.discard(task)
        if not task.cancelled() and task.exception() is None:
            last_answer = time.monotonic()

    next_check = last_answer + _interval()
    wake_at = next_check
    try:
        while True:
            now = time.monotonic()
            if now - wake_at > STALL_SECONDS:
                last_answer = now
            if now - last_answer >= CONSENT_TIMEOUT:
                on_expired()
                return
            if now >= next_check:
                for task in _send_checks(connection):
                    checks.add(task)
                    task.add_done_callback(check_done)
                next_check = now + _interval()
            wake_at = min(next_check, last_answer + CONSENT_TIMEOUT)
            await asyncio.sleep(wake_at - now)
    finally:
        for task in list(checks):
            task.cancel()


def _send_checks(connection: Connection) -> list[asyncio.Task[object]]:
    """One retransmitted consent check on each nominated pair (one, with max-bundle)."""
    key = (connection.remote_password or "").encode("utf8")
    tasks: list[asyncio.Task[object]] = []
    for pair in connection._nominated.values():
        request = connection.build_request(pair, nominate=False)
        check = pair.protocol.request(
            request, pair.remote_addr, integrity_key=key, retransmissions=CHECK_RETRANSMISSIONS
        )
        tasks.append(asyncio.ensure_future(check))
    return tasks


def _interval() -> float:
    return CHECK_INTERVAL * (0.8 + 0.4 * random.random())
