"""Which m-line carries which track: a pure plan from the current m-lines to the wanted set.

m-lines can never be removed from SDP. A track that goes away frees its m-line (it turns
`inactive`); a later offer's new track reuses a free m-line of the same kind and direction
before a new one is added, so the SDP stays as small as the largest set of tracks the call had at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

TrackKey = tuple[str, str]  # (peer_id, source)

RECEIVE = "receive"  # the client publishes on this m-line; the SFU receives
SEND = "send"  # the SFU sends a remote track on this m-line


@dataclass(eq=False)
class Slot:
    """One m-line of a peer's connection."""

    kind: str  # "audio" or "video"
    role: str  # RECEIVE or SEND
    owner: TrackKey | None = None
    handle: object = None  # the bridge's transceiver objects for this m-line


@dataclass(frozen=True)
class WantedTrack:
    key: TrackKey
    kind: str
    role: str


@dataclass
class Plan:
    freed: list[Slot] = field(default_factory=list)
    reused: list[tuple[Slot, TrackKey]] = field(default_factory=list)
    added: list[WantedTrack] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.freed or self.reused or self.added)


def plan_slots(slots: list[Slot], wanted: list[WantedTrack]) -> Plan:
    """What to free, reuse and add so that exactly the wanted tracks have an m-line."""
    plan = Plan()
    wanted_keys = {w.key: w for w in wanted}
    for slot in slots:
        if slot.owner is not None:
            w = wanted_keys.get(slot.owner)
            if w is None or w.kind != slot.kind or w.role != slot.role:
                plan.freed.append(slot)
    owned = {s.owner for s in slots if s.owner is not None and s not in plan.freed}
    # An m-line freed now turns inactive in this offer and is reusable from the next one:
    # switching it straight to another peer would fire no `track` event in browsers.
    free = [s for s in slots if s.owner is None]
    for w in wanted:
        if w.key in owned:
            continue
        reusable = next((s for s in free if s.kind == w.kind and s.role == w.role), None)
        if reusable is not None:
            free.remove(reusable)
            plan.reused.append((reusable, w.key))
        else:
            plan.added.append(w)
    return plan
