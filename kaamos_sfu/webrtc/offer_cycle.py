"""The server's offer/answer cycle with one client, as a state machine without I/O.

The server is always the offerer, and offers are serialized: while one is being made or
waits for its answer, a change only marks that another offer is wanted, and that offer
starts once the answer has been applied. The peer drives it: it asks whether to start an
offer, says when it planned, sent or gave one up, and when the answer came.
"""

from __future__ import annotations

from enum import Enum


class OfferState(Enum):
    IDLE = "idle"  # nothing to negotiate, or nothing asked yet
    OFFERING = "offering"  # an offer is being made (settling, planning, creating)
    AWAITING_ANSWER = "awaiting answer"
    CLOSED = "closed"


class OfferCycle:
    def __init__(self) -> None:
        self.state = OfferState.IDLE
        # A change arrived that the offer under way (or awaiting its answer) does not have.
        self.renegotiation_wanted = False

    def request(self) -> bool:
        """Something to negotiate changed. True: start making an offer now."""
        if self.state is OfferState.IDLE:
            self.state = OfferState.OFFERING
            self.renegotiation_wanted = False
            return True
        if self.state is not OfferState.CLOSED:
            self.renegotiation_wanted = True
        return False

    def planning(self) -> None:
        """The offer under way now reads what is wanted: it carries every change so far."""
        if self._in(OfferState.OFFERING):
            self.renegotiation_wanted = False

    def nothing_to_offer(self) -> None:
        """The plan changed no m-line: no offer is sent."""
        if self._in(OfferState.OFFERING):
            self.state = OfferState.IDLE

    def sent(self) -> None:
        """The offer went to the client (its answer may come before this returns)."""
        if self._in(OfferState.OFFERING):
            self.state = OfferState.AWAITING_ANSWER

    @property
    def awaiting_answer(self) -> bool:
        return self.state is OfferState.AWAITING_ANSWER

    def answered(self) -> bool:
        """The answer was applied. True: start the next offer now (a change came meanwhile)."""
        if not self._in(OfferState.AWAITING_ANSWER):
            return False
        self.state = OfferState.IDLE
        return self.renegotiation_wanted and self.request()

    def close(self) -> None:
        """Nothing is negotiated any more; every later step is ignored."""
        self.state = OfferState.CLOSED

    def _in(self, state: OfferState) -> bool:
        """Whether the cycle is in `state`; a step out of order (not after close) is a bug."""
        if self.state is OfferState.CLOSED:
            return False
        if self.state is not state:
            raise RuntimeError(f"offer cycle: expected {state.value}, in {self.state.value}")
        return True
