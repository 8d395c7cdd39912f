"""What the SFU knows about a stream it receives: loss and jitter for receiver reports,
which sequence numbers are missing so it can NACK them, and whether a packet belongs to
the stream at all (RFC 3550 A.1, A.3, A.8)."""

from __future__ import annotations

from enum import Enum

MAX_MISSING = 128  # older holes are given up: a NACK for them would come too late
# RFC 3550 A.1: a step forward of up to MAX_DROPOUT is loss; one back of up to
# MAX_MISORDER is a late packet. Anything else is a jump: the packet is not believed
# unless the next one follows it, which means the numbering started over.
MAX_DROPOUT = 3000
MAX_MISORDER = 100


class Arrival(Enum):
    NEXT = "next"  # in order (a duplicate of the newest counts here too)
    LOSS = "loss"  # in order after a gap: new holes to NACK
    LATE = "late"  # reordered or duplicate, within MAX_MISORDER
    JUMP = "jump"  # far from the stream: drop it, and see whether the next one follows
    RESTART = "restart"  # it followed a jump: the numbering started over (not counted)


class ReceiveStats:
    def __init__(self, clock_rate: int) -> None:
        self.clock_rate = clock_rate
        self.base_sequence: int | None = None
        self.max_sequence = 0
        self.cycles = 0
        self.received = 0
        self._expected_prior = 0
        self._received_prior = 0
        self._jitter_q4 = 0
        self._last_transit: int | None = None
        self._bad_sequence: int | None = None  # where a jump must continue to be believed
        self.missing: set[int] = set()

    def add(self, sequence: int, timestamp: int, arrival_seconds: float) -> Arrival:
        """Count a packet and say how it fits the stream. A JUMP or a RESTART is not
        counted: after a RESTART these statistics are over (start new ones)."""
        if self.base_sequence is None:
            self.base_sequence = self.max_sequence = sequence
        delta = (sequence - self.max_sequence) & 0xFFFF
        if delta == 0:
            arrival = Arrival.NEXT  # the first packet, or a duplicate of the newest
        elif delta < MAX_DROPOUT:
            if sequence < self.max_sequence:
                self.cycles += 1 << 16
            arrival = Arrival.NEXT
            if delta > 1:
                # Only the newest holes: older ones could not be recovered in time.
                for gap in range(max(1, delta - MAX_MISSING + 1), delta):
                    self.missing.add((self.max_sequence + gap) & 0xFFFF)
                arrival = Arrival.LOSS
                self._forget_old_holes(sequence)
            self.max_sequence = sequence
        elif delta > 0x10000 - MAX_MISORDER:
            arrival = Arrival.LATE
            self.missing.discard(sequence)
        elif sequence == self._bad_sequence:
            return Arrival.RESTART
        else:
            self._bad_sequence = (sequence + 1) & 0xFFFF
            return Arrival.JUMP
        self._bad_sequence = None
        self.received += 1
        # Transit time in RTP units, modulo 2**32 like the timestamps themselves.
        transit = (int(arrival_seconds * self.clock_rate) - timestamp) & 0xFFFFFFFF
        if self._last_transit is not None:
            difference = (transit - self._last_transit) & 0xFFFFFFFF
            if difference >= 0x80000000:
                difference = 0x100000000 - difference
            self._jitter_q4 += (difference * 16 - self._jitter_q4) >> 4
        self._last_transit = transit
        return arrival

    def is_recent(self, sequence: int, window: int) -> bool:
        """Whether `sequence` is the newest or one of the `window` before it (an RTX packet
        may only bring back those)."""
        return self.base_sequence is not None and (self.max_sequence - sequence) & 0xFFFF < window

    def _forget_old_holes(self, newest: int) -> None:
        """Runs only when a loss is seen, never per packet."""
        self.missing = {s for s in self.missing if (newest - s) & 0xFFFF < MAX_MISSING}

    @property
    def highest_sequence(self) -> int:
        return self.cycles | self.max_sequence

    @property
    def expected(self) -> int:
        if self.base_sequence is None:
            return 0
        return self.cycles + self.max_sequence - self.base_sequence + 1

    @property
    def packets_lost(self) -> int:
        return max(-0x800000, min(self.expected - self.received, 0x7FFFFF))

    @property
    def jitter(self) -> int:
        return self._jitter_q4 >> 4

    def fraction_lost(self) -> int:
        """Loss since the previous call, as RTCP's 8-bit fraction."""
        expected_interval = self.expected - self._expected_prior
        received_interval = self.received - self._received_prior
        self._expected_prior = self.expected
        self._received_prior = self.received
        lost = expected_interval - received_interval
        if expected_interval <= 0 or lost <= 0:
            return 0
        return min(255, (lost << 8) // expected_interval)
