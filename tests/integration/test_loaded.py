"""A busy machine: four clients whose pongs, consent answers and media come late stay in
the call, and one that really vanishes is still removed in time (bench/loaded.py; run it
longer with `python -m bench loaded --minutes 5`)."""

from __future__ import annotations

from pathlib import Path

from bench.loaded import loaded

SECONDS = 60.0


async def test_nobody_is_removed_from_a_call_on_a_busy_machine(tmp_path: Path) -> None:
    """60 s with two busy loops per CPU next to four clients: no one is removed, and a
    client that vanishes meanwhile is removed within rooms.peer_timeout_seconds."""
    result = await loaded(SECONDS, tmp_path)
    print(result.report())
    assert result.problems() == [], result.report()
