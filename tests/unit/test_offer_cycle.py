"""OfferCycle: when the server starts an offer, and what a change during one does."""

from __future__ import annotations

import pytest

from kaamos_sfu.webrtc.offer_cycle import OfferCycle, OfferState


def test_a_change_when_idle_starts_an_offer() -> None:
    """From idle, the first change starts an offer; more changes while it is made do not."""
    cycle = OfferCycle()
    assert cycle.request() is True
    assert cycle.state is OfferState.OFFERING
    assert cycle.request() is False


def test_changes_before_planning_are_in_the_offer() -> None:
    """A change that came before the plan was read needs no second offer."""
    cycle = OfferCycle()
    cycle.request()
    cycle.request()  # while settling
    cycle.planning()
    cycle.sent()
    assert cycle.answered() is False
    assert cycle.state is OfferState.IDLE


def test_a_change_after_planning_waits_for_the_answer() -> None:
    """Offers are serialized: a change during an offer starts the next one at the answer."""
    cycle = OfferCycle()
    cycle.request()
    cycle.planning()
    assert cycle.request() is False  # while creating the offer
    cycle.sent()
    assert cycle.request() is False  # while awaiting the answer
    assert cycle.awaiting_answer
    assert cycle.answered() is True
    assert cycle.state is OfferState.OFFERING and not cycle.renegotiation_wanted


def test_nothing_to_offer_goes_back_to_idle() -> None:
    """A plan that changes no m-line sends nothing; the next change starts afresh."""
    cycle = OfferCycle()
    cycle.request()
    cycle.planning()
    cycle.nothing_to_offer()
    assert cycle.state is OfferState.IDLE
    assert cycle.request() is True


def test_after_close_every_step_is_ignored() -> None:
    """A closed peer's offer task may still finish its steps: nothing restarts."""
    cycle = OfferCycle()
    cycle.request()
    cycle.close()
    cycle.planning()
    cycle.sent()
    assert cycle.answered() is False
    assert cycle.request() is False
    assert cycle.state is OfferState.CLOSED


@pytest.mark.parametrize(
    "step",
    [OfferCycle.planning, OfferCycle.sent, OfferCycle.nothing_to_offer, OfferCycle.answered],
)
def test_a_step_out_of_order_is_a_bug(step) -> None:  # type: ignore[no-untyped-def]
    """From idle, only a request may come: anything else raises."""
    with pytest.raises(RuntimeError):
        step(OfferCycle())
