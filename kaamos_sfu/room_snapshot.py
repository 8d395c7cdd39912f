"""Room records kept across a restart of a single node (the in-memory registry).

A restart (an upgrade, `systemctl restart`) tells callers to come back in a few seconds;
their room must still exist then. On shutdown the in-memory registry's records are written
to <state_dir>/rooms.json, and read back on start. With Redis, the records live there.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
from pathlib import Path

from .registry import RoomRecord, is_valid_room_id

log = logging.getLogger(__name__)

SNAPSHOT_FILE = "rooms.json"


def save(state_dir: Path, records: list[RoomRecord]) -> None:
    """Write the records atomically (a crash mid-write leaves the previous file); a
    failure is logged, not raised: the server is stopping anyway."""
    try:
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=state_dir, prefix=".rooms.")
        with os.fdopen(fd, "w") as f:
            json.dump([dataclasses.asdict(r) for r in records], f)
        os.replace(tmp_name, state_dir / SNAPSHOT_FILE)
    except OSError as exc:
        log.error("cannot save the room snapshot", extra={"error": str(exc)})
        return
    log.info("rooms saved", extra={"rooms": len(records)})


def take(state_dir: Path) -> list[RoomRecord]:
    """The saved records, and the file is removed: after a crash (no clean shutdown to write
    a new one) an old snapshot must not bring back rooms deleted since. None if there is no
    file; a damaged file is logged and skipped: losing rooms is better than not starting."""
    path = state_dir / SNAPSHOT_FILE
    try:
        data = json.loads(path.read_text())
        records = [RoomRecord(**item) for item in data]
        path.unlink()
    except FileNotFoundError:
        return []
    except (OSError, ValueError, TypeError) as exc:
        log.warning(
            "room snapshot unreadable, starting without it",
            extra={"path": str(path), "error": str(exc)},
        )
        return []
    return [r for r in records if is_valid_room_id(r.room_id)]
