"""ICE consent freshness (RFC 7675): slow answers keep a peer, no answers remove it, and
every removal is counted under a reason that says what happened."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from api_support import scrape, value
from call_support import clients, create_room
from fake_clock import FakeClock
from rtc_client import RtcClient
from timing import eventually

from kaamos_sfu.rtc_bridge import consent


@pytest.fixture
def fast_consent(monkeypatch: pytest.MonkeyPatch) -> None:
    """RFC 7675's timings scaled down 10 times: a check every 0.5 s, expiry after 3 s."""
    monkeypatch.setattr(consent, "CHECK_INTERVAL", 0.5)
    monkeypatch.setattr(consent, "CONSENT_TIMEOUT", 3.0)


def answer_consent_checks(client: RtcClient, delay: float | None) -> None:
    """Make the client answer the server's ICE checks `delay` seconds late (None: never)."""
    connection = client.pc.getTransceivers()[0].receiver.transport.transport._connection
    request_received = connection.request_received

    def late(*args: Any) -> None:
        if delay is not None:
            asyncio.get_running_loop().call_later(delay, request_received, *args)

    connection.request_received = late


async def test_a_client_answering_consent_checks_late_stays(
    make_config: Any, make_client: Any
) -> None:
    """Answers 2 s late keep the peer in the call past RFC 7675's 30 s, with its media
    flowing (aioice gave each check 0.5 s, no retransmission, and closed after 6 misses)."""
    http = await make_client(make_config())
    room_id = await create_room(http)
    async with clients(http, room_id, 2) as (a, slow):
        await a.wait_decoded((slow.peer_id, "camera"), frames=5)
        answer_consent_checks(slow, delay=2.0)
        await asyncio.sleep(consent.CONSENT_TIMEOUT + 6)
        assert not [m for m in a.messages if m["type"] == "peer-left"]
        before = a.received_from(slow.peer_id, "camera").packets
        await eventually(
            lambda: a.received_from(slow.peer_id, "camera").packets > before + 20,
            what="the slow peer's video still arriving",
        )


async def test_a_client_that_answers_no_consent_check_is_removed(
    make_config: Any, make_client: Any, fast_consent: None
) -> None:
    """A client whose media still flows but which answers no consent check is removed once
    consent expires (no more media may be sent to it), with close 4408 and the reason."""
    http = await make_client(make_config())
    room_id = await create_room(http)
    async with clients(http, room_id, 2) as (a, deaf):
        await a.wait_decoded((deaf.peer_id, "camera"), frames=5)
        answer_consent_checks(deaf, delay=None)
        stopped = time.monotonic()
        await a.wait_for(lambda m: m == {"type": "peer-left", "peer_id": deaf.peer_id}, timeout=8)
        assert 2.5 <= time.monotonic() - stopped <= 4.5
        await eventually(lambda: deaf.close_code is not None, what="close")
        assert deaf.close_code == 4408
        samples = await scrape(http)
        assert value(samples, "kaamos_leaves_total", reason="consent expired") == 1


class StallingClock(FakeClock):
    """Time for consent.py alone: sleeping advances it at once, and once, at `stall_at`,
    by `stall` more (the server got no CPU for a while)."""

    def __init__(self, stall_at: float, stall: float) -> None:
        super().__init__(now=100.0)
        self.stall_at: float | None = stall_at
        self.stall = stall

    async def sleep(self, seconds: float) -> None:
        await super().sleep(seconds)
        if self.stall_at is not None and self.now >= self.stall_at:
            self.now += self.stall
            self.stall_at = None


class NoPairs:
    """An ICE connection whose checks are never answered: it has no pair to send them on."""

    def __init__(self) -> None:
        self._nominated: dict[int, object] = {}
        self.remote_password = "x"


@pytest.mark.parametrize(("stall", "expires_at"), [(0.0, 130.0), (40.0, 150.0 + 30.0)])
async def test_consent_does_not_count_a_stall_of_the_server_against_the_client(
    monkeypatch: pytest.MonkeyPatch, stall: float, expires_at: float
) -> None:
    """Without answers consent expires 30 s after the last one; if the server itself was
    stalled (it could not send its checks), the 30 s start again when it runs again."""
    clock = StallingClock(stall_at=110.0, stall=stall)
    monkeypatch.setattr(consent, "time", clock)
    monkeypatch.setattr(consent.asyncio, "sleep", clock.sleep)
    expired: list[float] = []
    await consent._check_consent(NoPairs(), lambda: expired.append(clock.now))  # type: ignore[arg-type]
    assert expired == [pytest.approx(expires_at, abs=6.0)]
