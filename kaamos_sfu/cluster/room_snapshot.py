"""The in-memory registry's room records, kept current in <state_dir>/rooms.json.

A single node's rooms must outlive the process: a restart tells callers to come back in a
few seconds, and after a crash (SIGKILL, OOM, power cut) the bot's links must still work.
With Redis the records live there and this file is not used.

What is written when (the whole file each time, a few KB):
- `save_now` (create, delete): before the call returns, so a crash can neither lose a room
  whose link was handed out nor bring back a deleted one.
- `save_soon` (activity times, node ids, peer counts): at most once per `delay`. A join
  must not wait for an fsync, and losing the last second of these in a crash costs little:
  an expiry a second early (against a ttl of hours), a node id or peer count that the
  restarted node replaces at its first lookup or heartbeat.
- `close`: once more, on the way out.

Each write goes to a temp file in the same directory, is fsynced, renamed over the file and
the directory fsynced: the file is always a whole snapshot, old or new. The fsyncs run in a
thread, so the event loop only encodes the JSON. Writes are serialized, and a write that
has begun carries every change made before it, so waiters coalesce.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from .registry import RoomRecord, is_valid_room_id

log = logging.getLogger(__name__)

SNAPSHOT_FILE = "rooms.json"
FORMAT_VERSION = 1
SAVE_DELAY = 1.0
RETRY_DELAY = 10.0  # after a failed write


def load(path: Path) -> list[RoomRecord]:
    """The records in the file; none if there is no file. A damaged file is logged and
    skipped: losing rooms is better than not starting. Reads the current format and the
    earlier one (a bare list of records, written only at a clean stop)."""
    try:
        data = json.loads(path.read_bytes())
        if isinstance(data, dict) and data.get("version") == FORMAT_VERSION:
            data = data["rooms"]
        if not isinstance(data, list):
            raise TypeError(f"not a list of rooms (format version {FORMAT_VERSION})")
        records = [_record(item) for item in data]
    except FileNotFoundError:
        return []
    except (OSError, ValueError, TypeError, KeyError) as exc:
        log.warning(
            "room snapshot unreadable, starting without it",
            extra={"path": str(path), "error": str(exc)},
        )
        return []
    records = [r for r in records if is_valid_room_id(r.room_id)]
    log.info("rooms loaded", extra={"rooms": len(records), "path": str(path)})
    return records


def _record(item: object) -> RoomRecord:
    """A record from its JSON form; TypeError if a field has the wrong type, so that a
    damaged file fails here rather than in the first expiry computed from it."""
    if not isinstance(item, dict):
        raise TypeError("a room is not an object")
    record = RoomRecord(**item)
    number = (int, float)
    if not (
        isinstance(record.room_id, str)
        and isinstance(record.creator_user_id, int | str | None)
        and all(isinstance(t, number) for t in (record.created_at, record.last_activity))
        and isinstance(record.ttl_seconds, number)
        and isinstance(record.node_id, str | None)
        and isinstance(record.participants, int)
    ):
        raise TypeError(f"a room with a field of the wrong type: {item!r}")
    return record


def encode(records: list[RoomRecord]) -> bytes:
    rooms = [dataclasses.asdict(r) for r in records]
    return json.dumps({"version": FORMAT_VERSION, "rooms": rooms}).encode()


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so that a crash at any point leaves the old file or the
    new one. Blocking (fsync): run it in a thread."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".rooms.")  # 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    # The rename itself is only durable once the directory is.
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class RoomFile:
    """Keeps `path` equal to `records()`, as told by `save_now` and `save_soon`. A failed
    write is logged (once until one succeeds again), retried after RETRY_DELAY, and never
    raised: the server goes on with its rooms in memory."""

    def __init__(
        self, path: Path, records: Callable[[], list[RoomRecord]], delay: float = SAVE_DELAY
    ) -> None:
        self.path = path
        self.delay = delay
        self._records = records
        self._changes = 0  # changes announced so far
        self._saved = 0  # of those, how many the file holds
        self._lock = asyncio.Lock()  # one write at a time, in order
        self._timer: asyncio.TimerHandle | None = None
        self._writes: set[asyncio.Task[None]] = set()
        self._failing = False
        self._closed = False

    def load(self) -> list[RoomRecord]:
        return load(self.path)

    async def save_now(self) -> None:
        """Return once the records as they are now are on disk (or the write failed)."""
        self._changes += 1
        # Shielded: a cancelled caller must not release the lock while its thread still
        # writes, or a later snapshot could be renamed first and then overwritten.
        await asyncio.shield(self._spawn_write())

    def save_soon(self) -> None:
        """The records changed in a way that may wait: write within `delay`."""
        self._changes += 1
        self._arm(self.delay)

    async def close(self) -> None:
        """Write what is not on disk yet; nothing is written afterwards."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._changes += 1  # a last snapshot even if nothing changed (e.g. purged rooms)
        await asyncio.shield(self._spawn_write())
        if self._saved == self._changes:
            log.info("rooms saved", extra={"rooms": len(self._records())})

    def _arm(self, delay: float) -> None:
        if self._timer is None and not self._closed:
            self._timer = asyncio.get_running_loop().call_later(delay, self._due)

    def _due(self) -> None:
        self._timer = None
        self._spawn_write()

    def _spawn_write(self) -> asyncio.Task[None]:
        task = asyncio.ensure_future(self._write(self._changes))
        self._writes.add(task)  # a reference until it is done
        task.add_done_callback(self._writes.discard)
        return task

    async def _write(self, upto: int) -> None:
        async with self._lock:
            if self._saved >= upto:
                return  # a write that began after change `upto` has carried it
            changes = self._changes
            records = self._records()
            try:
                await asyncio.to_thread(write_atomically, self.path, encode(records))
            except OSError as exc:
                if not self._failing:
                    self._failing = True
                    log.error(
                        "cannot save the room snapshot",
                        extra={"path": str(self.path), "error": str(exc)},
                    )
                self._arm(RETRY_DELAY)  # e.g. a full disk that frees up: the file catches up
                return
            self._saved = changes
            if self._failing:
                self._failing = False
                log.info("room snapshot saved again", extra={"rooms": len(records)})
