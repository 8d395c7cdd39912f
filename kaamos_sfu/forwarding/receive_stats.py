"""What the SFU knows about a stream it receives: loss and jitter for receiver reports,
and which sequence numbers are missing so it can NACK them (RFC 3550 A.1, A.3, A.8)."""

from __future__ import annotations

MAX_MISSING = 128  # older holes are given up: a NACK for them would come too late


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
        self.missing: set[int] = set()

    def add(self, sequence: int, timestamp: int, arrival_seconds: float) -> bool:
        """Count a packet; True when it revealed new missing packets to NACK."""
        self.received += 1
        # Transit time in RTP units, modulo 2**32 like the timestamps themselves.
        transit = (int(arrival_seconds * self.clock_rate) - timestamp) & 0xFFFFFFFF
        if self.base_sequence is None:
            self.base_sequence = self.max_sequence = sequence
            self._last_transit = transit
            return False
        missed = False
        delta = (sequence - self.max_sequence) & 0xFFFF
        if 0 < delta < 0x8000:
            if sequence < self.max_sequence:
                self.cycles += 1 << 16
            if delta > 1:
                # Only the newest holes: older ones could not be recovered in time.
                for gap in range(max(1, delta - MAX_MISSING + 1), delta):
                    self.missing.add((self.max_sequence + gap) & 0xFFFF)
                missed = True
                self._forget_old_holes(sequence)
            self.max_sequence = sequence
        elif self.missing:
            self.missing.discard(sequence)
        if self._last_transit is not None:
            difference = (transit - self._last_transit) & 0xFFFFFFFF
            if difference >= 0x80000000:
                difference = 0x100000000 - difference
            self._jitter_q4 += (difference * 16 - self._jitter_q4) >> 4
        self._last_transit = transit
        return missed

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
