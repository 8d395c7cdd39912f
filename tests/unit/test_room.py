"""The room core without sockets or WebRTC: fake participants join, publish, leave; the
manager admits and removes them (kaamos_sfu/room/)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kaamos_sfu.cluster.memory_registry import MemoryRegistry
from kaamos_sfu.cluster.node import Node
from kaamos_sfu.config import Config
from kaamos_sfu.forwarding import Codec, UpTrack
from kaamos_sfu.protocol import (
    BadMessage,
    ErrorCode,
    Joined,
    PeerInfo,
    PeerJoined,
    PeerLeft,
    PeerUpdated,
    RoomEnded,
    ServerMessage,
    ServerShutdown,
)
from kaamos_sfu.room import (
    JoinRefused,
    LeaveReason,
    PublishedTrack,
    Room,
    RoomManager,
    ServerDraining,
    new_participant_id,
)
from kaamos_sfu.stats import MediaCounts

VP8 = Codec("video/VP8", 90_000, None, 96)


class FakeParticipant:
    """A member that only records what the room tells it."""

    def __init__(self, name: str, sources: tuple[str, ...] = ()) -> None:
        self.info = PeerInfo(new_participant_id(), name, list(sources))
        self.messages: list[ServerMessage] = []
        self.subscribed: list[tuple[str, str]] = []
        self.sources_changes = 0
        self.room: Room | None = None
        self.closed: LeaveReason | None = None

    def push(self, message: ServerMessage) -> None:
        self.messages.append(message)

    def admitted(self, room: Room) -> None:
        self.room = room

    def sources_changed(self) -> None:
        self.sources_changes += 1

    def subscribe(self, track: PublishedTrack) -> None:
        self.subscribed.append(track.key)

    def unsubscribe(self, track: PublishedTrack) -> None:
        self.subscribed.remove(track.key)

    async def close(self, reason: LeaveReason) -> None:
        self.closed = reason

    def media_counts(self) -> MediaCounts:
        return MediaCounts(packets_received=1)

    def of(self, kind: type[Any]) -> list[Any]:
        return [m for m in self.messages if isinstance(m, kind)]


def track(owner: FakeParticipant, source: str) -> PublishedTrack:
    kind = "audio" if source == "microphone" else "video"
    uptrack = UpTrack(
        peer_id=owner.info.peer_id,
        source=source,
        kind=kind,
        codec_name="VP8",
        clock_rate=90_000,
        payload_type=96,
        request_keyframe=lambda ssrc: None,
    )
    return PublishedTrack(owner.info.peer_id, source, kind, VP8, uptrack)


@pytest.fixture
async def manager() -> RoomManager:
    config = Config()
    registry = MemoryRegistry(ttl_seconds=3600)
    return RoomManager(config, registry, Node(config, registry))


async def new_room(manager: RoomManager) -> str:
    return (await manager.registry.create(creator_user_id=1)).room_id


async def test_a_newcomer_is_told_who_is_there_and_receives_what_is_published(
    manager: RoomManager,
) -> None:
    """`joined` lists the others; they get `peer-joined`; the newcomer subscribes to every
    published track, in join and source order."""
    room_id = await new_room(manager)
    ann, bob = FakeParticipant("Ann", ("camera", "microphone")), FakeParticipant("Bob")
    room = await manager.join(room_id, ann)
    room.add_track(track(ann, "microphone"))
    room.add_track(track(ann, "camera"))
    await manager.join(room_id, bob)
    (joined,) = bob.of(Joined)
    assert joined.peers == [ann.info.to_json()] and joined.room_id == room_id
    assert ann.of(PeerJoined) == [PeerJoined(bob.info.to_json())]
    assert bob.subscribed == [(ann.info.peer_id, "camera"), (ann.info.peer_id, "microphone")]
    assert ann.subscribed == [] and bob.room is room and ann.room is room


async def test_a_full_room_refuses_and_counts_it(manager: RoomManager) -> None:
    """The fifth participant gets ROOM_FULL; nobody inside is told anything."""
    room_id = await new_room(manager)
    inside = [FakeParticipant(name) for name in "ABCD"]
    for participant in inside:
        await manager.join(room_id, participant)
    with pytest.raises(JoinRefused) as refused:
        await manager.join(room_id, FakeParticipant("E"))
    assert refused.value.code is ErrorCode.ROOM_FULL
    assert manager.counts.join_refusals["ROOM_FULL"] == 1
    assert len(inside[0].of(PeerJoined)) == 3


async def test_an_expired_room_refuses_until_its_call_is_live() -> None:
    """A room past its expiry takes nobody new, unless its call is still going on here."""
    config = Config()
    registry = MemoryRegistry(ttl_seconds=0.4)  # expired after 0.4 s, forgotten after 0.8 s
    manager = RoomManager(config, registry, Node(config, registry))
    live, idle = (await registry.create(1)).room_id, (await registry.create(1)).room_id
    await manager.join(live, FakeParticipant("Ann"))
    await asyncio.sleep(0.5)
    await manager.join(live, FakeParticipant("Bob"))  # its call keeps it going
    with pytest.raises(JoinRefused) as refused:
        await manager.join(idle, FakeParticipant("Cid"))
    assert refused.value.code is ErrorCode.ROOM_EXPIRED


@pytest.mark.parametrize(
    ("room_id", "code"),
    [("not-a-room", ErrorCode.INVALID_ROOM_ID), ("AAAAAAAAAA", ErrorCode.ROOM_NOT_FOUND)],
)
async def test_no_such_room(manager: RoomManager, room_id: str, code: ErrorCode) -> None:
    """A malformed or unknown room id is refused with its code."""
    with pytest.raises(JoinRefused) as refused:
        await manager.join(room_id, FakeParticipant("Ann"))
    assert refused.value.code is code


async def test_leaving_tells_the_others_and_stops_what_they_received(
    manager: RoomManager,
) -> None:
    """The others get `peer-left` and unsubscribe from the leaver's tracks; the leaver is
    closed with the reason, its counts kept; an empty room is gone."""
    room_id = await new_room(manager)
    ann, bob = FakeParticipant("Ann", ("camera",)), FakeParticipant("Bob")
    room = await manager.join(room_id, ann)
    await manager.join(room_id, bob)
    room.add_track(track(ann, "camera"))
    assert bob.subscribed == [(ann.info.peer_id, "camera")]
    await manager.leave(room, ann, LeaveReason.MEDIA_TIMEOUT)
    await manager.leave(room, ann, LeaveReason.LEFT)  # twice: nothing more happens
    assert bob.of(PeerLeft) == [PeerLeft(ann.info.peer_id)]
    assert bob.subscribed == []
    assert ann.closed is LeaveReason.MEDIA_TIMEOUT
    assert manager.counts.leaves == {"media timeout": 1}
    assert manager.retired_media.packets_received == 1
    await manager.leave(room, bob, LeaveReason.LEFT)
    assert room_id not in manager.rooms


async def test_who_renegotiates_when_a_source_comes_and_goes(manager: RoomManager) -> None:
    """publish: the publisher negotiates it, the others see it listed, and receive it once
    its media is negotiated; unpublish: they stop receiving it. Only the others are told."""
    room_id = await new_room(manager)
    ann, bob = FakeParticipant("Ann", ("camera",)), FakeParticipant("Bob")
    room = await manager.join(room_id, ann)
    await manager.join(room_id, bob)
    room.publish(ann, "screen")
    assert ann.sources_changes == 1 and ann.info.sources == ["camera", "screen"]
    assert bob.of(PeerUpdated)[-1].peer["sources"] == ["camera", "screen"]
    assert ann.of(PeerUpdated) == []
    room.add_track(track(ann, "screen"))
    assert bob.subscribed == [(ann.info.peer_id, "screen")] and ann.subscribed == []
    room.unpublish(ann, "screen")
    assert ann.sources_changes == 2 and bob.subscribed == []
    room.add_track(track(ann, "screen"))  # a late answer for what was unpublished
    assert bob.subscribed == []
    with pytest.raises(BadMessage):
        room.unpublish(ann, "screen")
    with pytest.raises(BadMessage):
        room.publish(ann, "camera")


async def test_mute_is_a_flag_for_the_others(manager: RoomManager) -> None:
    """mute changes the participant's state and tells the others, nothing else."""
    room_id = await new_room(manager)
    ann, bob = FakeParticipant("Ann", ("microphone",)), FakeParticipant("Bob")
    room = await manager.join(room_id, ann)
    await manager.join(room_id, bob)
    room.mute(ann, "microphone", True)
    assert bob.of(PeerUpdated)[-1].peer["muted"] == {"camera": False, "microphone": True}
    assert ann.sources_changes == 0 and ann.of(PeerUpdated) == []


async def test_draining_tells_everyone_and_refuses_newcomers(manager: RoomManager) -> None:
    """During the drain calls go on, every participant was told, and joins are refused."""
    room_id = await new_room(manager)
    ann = FakeParticipant("Ann")
    await manager.join(room_id, ann)
    await manager.begin_drain(retry_after=5)
    assert ann.of(ServerShutdown) == [ServerShutdown(5)]
    with pytest.raises(ServerDraining):
        await manager.join(room_id, FakeParticipant("Bob"))
    await manager.close()
    assert ann.closed is LeaveReason.SERVER_SHUTDOWN
    assert ann.of(PeerLeft) == []


async def test_ending_a_room_lets_everyone_go_without_departures(manager: RoomManager) -> None:
    """room-ended, then each is closed (4001); nobody is told of the others leaving."""
    room_id = await new_room(manager)
    ann, bob = FakeParticipant("Ann"), FakeParticipant("Bob")
    await manager.join(room_id, ann)
    await manager.join(room_id, bob)
    await manager.end_room(room_id)
    for participant in (ann, bob):
        assert participant.messages[-1] == RoomEnded()
        assert participant.closed is LeaveReason.ROOM_ENDED
    assert ann.of(PeerLeft) == [] and manager.counts.leaves == {"room ended": 2}
