"""plan_slots: which m-lines to free, which to reuse (same kind and role) and what to add."""

from __future__ import annotations

import pytest

from kaamos_sfu.webrtc.negotiation import (
    RECEIVE,
    SEND,
    Plan,
    Slot,
    TrackKey,
    WantedTrack,
    plan_slots,
)

# Tracks: (peer, source) with the kind that source has.
ME_CAM = ("me", "camera")
ME_MIC = ("me", "microphone")
ME_SCREEN = ("me", "screen")
BOB_CAM = ("bob", "camera")
BOB_MIC = ("bob", "microphone")
BOB_SCREEN = ("bob", "screen")
EVE_CAM = ("eve", "camera")
EVE_MIC = ("eve", "microphone")
KIND = {"camera": "video", "screen": "video", "microphone": "audio"}


def slot(spec: str) -> Slot:
    """'video/send' (free) or 'video/send bob camera' (owned)."""
    kind_role, _, owner = spec.partition(" ")
    kind, role = kind_role.split("/")
    return Slot(
        kind=kind,
        role={"send": SEND, "receive": RECEIVE}[role],
        owner=tuple(owner.split()) if owner else None,  # type: ignore[arg-type]
    )


def wanted(key: TrackKey, role: str = SEND) -> WantedTrack:
    return WantedTrack(key=key, kind=KIND[key[1]], role=role)


def described(
    plan: Plan, slots: list[Slot]
) -> tuple[list[int], list[tuple[int, TrackKey]], list[TrackKey]]:
    """The plan with slots named by their index (their mid order)."""
    index = {id(s): i for i, s in enumerate(slots)}
    return (
        [index[id(s)] for s in plan.freed],
        [(index[id(s)], key) for s, key in plan.reused],
        [w.key for w in plan.added],
    )


CASES = [
    ("nothing at all", [], [], ([], [], [])),
    (
        "first offer: my sources and a remote peer",
        [],
        [wanted(ME_CAM, RECEIVE), wanted(ME_MIC, RECEIVE), wanted(BOB_CAM), wanted(BOB_MIC)],
        ([], [], [ME_CAM, ME_MIC, BOB_CAM, BOB_MIC]),
    ),
    (
        "everything already in place",
        ["video/receive me camera", "audio/send bob microphone", "video/send bob camera"],
        [wanted(BOB_CAM), wanted(ME_CAM, RECEIVE), wanted(BOB_MIC)],
        ([], [], []),
    ),
    (
        "a peer leaves: its m-lines are freed",
        ["video/send bob camera", "audio/send bob microphone", "video/send eve camera"],
        [wanted(EVE_CAM)],
        ([0, 1], [], []),
    ),
    (
        "a new track reuses a free m-line of its kind and role",
        ["video/send", "audio/send"],
        [wanted(BOB_MIC), wanted(BOB_CAM)],
        ([], [(1, BOB_MIC), (0, BOB_CAM)], []),
    ),
    (
        "the lowest free m-line is reused first",
        ["video/send eve camera", "video/send", "audio/send", "video/send"],
        [wanted(EVE_CAM), wanted(BOB_CAM)],
        ([], [(1, BOB_CAM)], []),
    ),
    (
        "a free m-line of another kind is not reused",
        ["audio/send", "audio/send"],
        [wanted(BOB_CAM)],
        ([], [], [BOB_CAM]),
    ),
    (
        "a free m-line of another role is not reused",
        ["video/receive", "video/send"],
        [wanted(ME_SCREEN, RECEIVE), wanted(BOB_SCREEN)],
        ([], [(0, ME_SCREEN), (1, BOB_SCREEN)], []),
    ),
    (
        "a receiving m-line is not reused to send, nor the reverse",
        ["video/receive", "audio/send"],
        [wanted(BOB_CAM), wanted(ME_MIC, RECEIVE)],
        ([], [], [BOB_CAM, ME_MIC]),
    ),
    (
        "one peer leaves and another joins in the same offer: freed m-lines go inactive first",
        ["video/send bob camera", "audio/send bob microphone"],
        [wanted(EVE_CAM), wanted(EVE_MIC)],
        ([0, 1], [], [EVE_CAM, EVE_MIC]),
    ),
    (
        "more tracks than free m-lines: reuse, then add",
        ["audio/send", "video/send", "audio/send bob microphone"],
        [wanted(BOB_MIC), wanted(EVE_MIC), wanted(BOB_CAM), wanted(EVE_CAM)],
        ([], [(0, EVE_MIC), (1, BOB_CAM)], [EVE_CAM]),
    ),
    (
        "added tracks keep the wanted order",
        [],
        [wanted(EVE_MIC), wanted(BOB_CAM), wanted(ME_MIC, RECEIVE)],
        ([], [], [EVE_MIC, BOB_CAM, ME_MIC]),
    ),
    (
        "an owner wanted in another role moves to a free matching m-line",
        ["video/send me camera", "video/receive"],
        [wanted(ME_CAM, RECEIVE)],
        ([0], [(1, ME_CAM)], []),
    ),
    (
        "an owner wanted in another role with no matching m-line gets a new one",
        ["video/receive me camera"],
        [wanted(ME_CAM)],
        ([0], [], [ME_CAM]),
    ),
    (
        "unpublish frees the receiving m-line; free m-lines stay untouched",
        ["video/receive me camera", "audio/receive me microphone", "video/send"],
        [wanted(ME_MIC, RECEIVE)],
        ([0], [], []),
    ),
    (
        "no wanted tracks: every owned m-line is freed, free ones are left alone",
        ["video/send bob camera", "video/send", "audio/receive me microphone"],
        [],
        ([0, 2], [], []),
    ),
]


@pytest.mark.parametrize(
    ("slots", "wanted_tracks", "expected"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_plan(
    slots: list[str],
    wanted_tracks: list[WantedTrack],
    expected: tuple[list[int], list[tuple[int, TrackKey]], list[TrackKey]],
) -> None:
    """The plan frees, reuses and adds exactly what makes the wanted tracks have one m-line each."""
    current = [slot(s) for s in slots]
    plan = plan_slots(current, wanted_tracks)
    assert described(plan, current) == expected
    assert plan.changed == any(expected)


@pytest.mark.parametrize(
    ("slots", "wanted_tracks"),
    [(c[1], c[2]) for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_applying_the_plan_gives_each_wanted_track_one_slot(
    slots: list[str], wanted_tracks: list[WantedTrack]
) -> None:
    """After applying the plan every wanted track owns exactly one m-line of its kind and role."""
    current = [slot(s) for s in slots]
    plan = plan_slots(current, wanted_tracks)
    for s in plan.freed:
        s.owner = None
    for s, key in plan.reused:
        s.owner = key
    current += [Slot(kind=w.kind, role=w.role, owner=w.key) for w in plan.added]
    owners = [(s.owner, s.kind, s.role) for s in current if s.owner is not None]
    assert sorted(owners) == sorted((w.key, w.kind, w.role) for w in wanted_tracks)
    assert plan_slots(current, wanted_tracks).changed is False


def test_plan_does_not_modify_slots() -> None:
    """Planning is pure: the slots are unchanged until the caller applies the plan."""
    current = [slot("video/send bob camera"), slot("video/send")]
    plan_slots(current, [wanted(EVE_CAM)])
    assert [s.owner for s in current] == [BOB_CAM, None]
