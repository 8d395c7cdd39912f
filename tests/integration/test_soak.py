"""Churn: people joining and leaving one room many times leave nothing behind on the
server (bench/soak.py runs the same thing longer: `python -m bench soak`)."""

from __future__ import annotations

from pathlib import Path

from bench.soak import soak

CYCLES = 200
MAX_GROWTH_PER_CYCLE = 16 * 1024  # bytes; a kept peer cost about 870 KiB


async def test_joining_and_leaving_200_times_leaks_nothing(tmp_path: Path) -> None:
    """200 join/leave cycles against a server process: its memory stays flat, its file
    descriptors and tasks too, and once everyone has left no peer object is alive."""
    result = await soak(CYCLES, checkpoint_every=50, workdir=tmp_path)
    print(result.table())
    assert not result.survivors(), result.table()
    assert result.rss_growth_per_cycle() < MAX_GROWTH_PER_CYCLE, result.table()
    assert result.problems() == [], result.table()
