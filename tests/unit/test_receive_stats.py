"""ReceiveStats: RFC 3550 loss and jitter for receiver reports, and the holes to NACK."""

from __future__ import annotations

import pytest

from kaamos_sfu.forwarding.receive_stats import (
    MAX_DROPOUT,
    MAX_MISORDER,
    MAX_MISSING,
    Arrival,
    ReceiveStats,
)


def feed(stats: ReceiveStats, sequences: list[int]) -> list[bool]:
    """Add packets with a perfectly regular clock (20 ms, 8 kHz): no jitter. True for
    each packet that revealed a loss to NACK."""
    return [stats.add(s, 160 * i, 0.02 * i) is Arrival.LOSS for i, s in enumerate(sequences)]


def test_nothing_received() -> None:
    """Before any packet every figure is zero."""
    stats = ReceiveStats(8000)
    assert (stats.expected, stats.received, stats.packets_lost, stats.jitter) == (0, 0, 0, 0)
    assert stats.fraction_lost() == 0
    assert stats.missing == set()


@pytest.mark.parametrize(
    ("sequences", "highest", "expected", "lost", "missing", "reports"),
    [
        ([7], 7, 1, 0, set(), [False]),
        ([1, 2, 3, 4], 4, 4, 0, set(), [False] * 4),
        ([1, 2, 5], 5, 5, 2, {3, 4}, [False, False, True]),
        ([1, 2, 5, 3], 5, 5, 1, {4}, [False, False, True, False]),
        ([1, 2, 5, 4, 3], 5, 5, 0, set(), [False, False, True, False, False]),
        ([1, 3, 2, 5], 5, 5, 1, {4}, [False, True, False, True]),
        # duplicates count as received (RFC 3550 A.3): loss can go negative
        ([1, 2, 2, 3], 3, 3, -1, set(), [False] * 4),
        # a late packet from before the first one does not move the base or the max
        ([10, 11, 9], 11, 2, -1, set(), [False] * 3),
        # wraparound: cycles count in the high bits
        ([65_534, 65_535, 0, 1], 65_536 + 1, 4, 0, set(), [False] * 4),
        ([65_534, 1], 65_536 + 1, 4, 2, {65_535, 0}, [False, True]),
        ([65_535, 0, 65_534], 65_536, 2, -1, set(), [False] * 3),
        # steps up to MAX_DROPOUT are loss, across the wrap too
        (
            [65_500, 10, 3_000, 5_990],
            (1 << 16) | 5_990,
            65_536 + 5_990 - 65_500 + 1,
            None,
            None,
            [False, True, True, True],
        ),
    ],
)
def test_sequence_accounting(
    sequences: list[int],
    highest: int,
    expected: int,
    lost: int | None,
    missing: set[int] | None,
    reports: list[bool] | None,
) -> None:
    """Extended highest sequence, expected, lost and missing follow RFC 3550 A.1/A.3."""
    stats = ReceiveStats(8000)
    results = feed(stats, sequences)
    assert stats.highest_sequence == highest
    assert stats.expected == expected
    assert stats.received == len(sequences)
    if lost is not None:
        assert stats.packets_lost == lost
    if missing is not None:
        assert stats.missing == missing
    if reports is not None:
        assert results == reports


def test_packets_lost_is_clamped_to_24_bits() -> None:
    """Cumulative loss saturates at the 24-bit signed limits of a receiver report."""
    stats = ReceiveStats(8000)
    sequence = 0
    stats.add(sequence, 0, 0.0)
    for _ in range(3000):  # each step loses MAX_DROPOUT - 2 packets
        sequence = (sequence + MAX_DROPOUT - 1) & 0xFFFF
        stats.add(sequence, 0, 0.0)
    assert stats.expected - stats.received > 0x7FFFFF
    assert stats.packets_lost == 0x7FFFFF
    stats.received = stats.expected + 0x900000  # as if millions of duplicates
    assert stats.packets_lost == -0x800000


def test_fraction_lost_per_interval() -> None:
    """fraction_lost is the loss since the previous call, as an 8-bit fixed-point fraction."""
    stats = ReceiveStats(8000)
    feed(stats, [0, 1, 2, 3, 4, 5, 6, 7])  # 8 expected, 8 received
    assert stats.fraction_lost() == 0
    for s in (8, 10, 12, 14):  # 7 expected (8..14), 4 received
        stats.add(s, 0, 0.0)
    assert stats.expected == 15
    assert stats.fraction_lost() == (3 << 8) // 7
    assert stats.fraction_lost() == 0  # nothing new
    stats.add(20, 0, 0.0)  # 6 expected (15..20), 1 received
    assert stats.fraction_lost() == (5 << 8) // 6
    for s in (15, 16, 17, 21):  # late arrivals: more received than expected in this interval
        stats.add(s, 0, 0.0)
    assert stats.fraction_lost() == 0


def test_fraction_lost_saturates() -> None:
    """Losing 999 of 1000 packets reports 255, the largest 8-bit fraction."""
    stats = ReceiveStats(8000)
    stats.add(0, 0, 0.0)
    stats.fraction_lost()
    stats.add(1000, 0, 0.0)
    assert stats.fraction_lost() == 255  # 999/1000 lost: floor(999 * 256 / 1000)


@pytest.mark.parametrize(
    ("clock_rate", "transits", "expected"),
    [
        # constant transit: no jitter
        (8000, [0, 0, 0, 0, 0], 0),
        # one step of |D| = 1000 ticks: J = D/16 = 62.5
        (8000, [0, 1000], 62),
        (48_000, [0, -3000], 187),
        # two steps: J1 = 62.5, J2 = 62.5 + (1000 - 62.5)/16 = 121.09
        (8000, [0, 1000, 0], 121),
        # a constant |D| converges to D (to within the integer rounding)
        (8000, [0, 1000] * 100, 999),
    ],
)
def test_jitter(clock_rate: int, transits: list[int], expected: int) -> None:
    """Interarrival jitter follows RFC 3550 A.8, in timestamp units."""
    stats = ReceiveStats(clock_rate)
    for i, transit in enumerate(transits):
        timestamp = clock_rate * i  # one packet a second; transits are exact binary fractions
        arrival = (timestamp + transit) / clock_rate
        stats.add(i, timestamp, arrival)
    assert stats.jitter == expected


def test_jitter_across_timestamp_wrap() -> None:
    """A perfectly regular stream whose RTP timestamps wrap past 2^32 has no jitter."""
    stats = ReceiveStats(90_000)
    first = 0xFFFF_FFFF - 5999
    for i in range(6):
        stats.add(i, (first + 3000 * i) & 0xFFFF_FFFF, i / 30)
    assert stats.jitter == 0


def test_holes_stay_bounded() -> None:
    """Under steady loss the holes never exceed MAX_MISSING, and the newest is always kept."""
    stats = ReceiveStats(90_000)
    for i in range(400):  # every other packet lost, across the wrap
        newest = (65_000 + 2 * i) & 0xFFFF
        stats.add(newest, 0, 0.0)
        assert len(stats.missing) <= MAX_MISSING
        if i:
            assert (newest - 1) & 0xFFFF in stats.missing
    assert (65_000 + 1) & 0xFFFF not in stats.missing  # the first hole was given up


def test_wide_gap_keeps_the_newest_holes() -> None:
    """After a gap wider than MAX_MISSING the holes to NACK are the most recent ones."""
    stats = ReceiveStats(90_000)
    stats.add(0, 0, 0.0)
    assert stats.add(1000, 0, 0.0)
    assert 999 in stats.missing
    assert all(1000 - s < MAX_MISSING for s in stats.missing)


def test_a_jump_is_dropped_unless_the_next_packet_follows_it() -> None:
    """RFC 3550 A.1: a packet far from the stream is not counted; a second one right after
    it means the numbering started over (RESTART, for new statistics)."""
    stats = ReceiveStats(8000)
    for sequence in (100, 101, 102):
        assert stats.add(sequence, 0, 0.0) is Arrival.NEXT
    assert stats.add(40_000, 0, 0.0) is Arrival.JUMP  # a stray packet
    assert stats.add(103, 0, 0.0) is Arrival.NEXT  # the stream goes on: it was nothing
    assert (stats.highest_sequence, stats.received) == (103, 4)
    assert stats.add(50_000, 0, 0.0) is Arrival.JUMP
    assert stats.add(50_001, 0, 0.0) is Arrival.RESTART
    assert (stats.highest_sequence, stats.received) == (103, 4)


@pytest.mark.parametrize(
    ("step", "arrival"),
    [
        (1, Arrival.NEXT),
        (2, Arrival.LOSS),
        (MAX_DROPOUT - 1, Arrival.LOSS),
        (MAX_DROPOUT, Arrival.JUMP),
        (0x8000, Arrival.JUMP),
        (-MAX_MISORDER, Arrival.JUMP),
        (-MAX_MISORDER + 1, Arrival.LATE),
        (-1, Arrival.LATE),
        (0, Arrival.NEXT),
    ],
)
def test_how_far_a_packet_may_be_from_the_newest(step: int, arrival: Arrival) -> None:
    """Forward up to MAX_DROPOUT is loss, back up to MAX_MISORDER is late, else a jump."""
    stats = ReceiveStats(8000)
    stats.add(65_000, 0, 0.0)
    assert stats.add((65_000 + step) & 0xFFFF, 0, 0.0) is arrival


def test_is_recent() -> None:
    """An RTX packet may bring back the newest packet or one of the `window` before it."""
    stats = ReceiveStats(90_000)
    assert not stats.is_recent(5, 512)
    stats.add(5, 0, 0.0)
    assert stats.is_recent(5, 512)
    assert stats.is_recent((5 - 511) & 0xFFFF, 512)
    assert not stats.is_recent((5 - 512) & 0xFFFF, 512)
    assert not stats.is_recent(6, 512)  # not sent yet
