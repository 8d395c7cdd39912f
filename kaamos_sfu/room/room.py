"""One call: its participants, the tracks they publish, and the commands that change them.

Synchronous and without I/O: a command updates the room and tells the participants what
they must know (messages pushed to their clients, tracks to receive or stop receiving).
Who was admitted, and who is removed when, is the RoomManager's business.
"""

from __future__ import annotations

from collections.abc import Callable

from ..protocol import (
    MUTABLE_SOURCES,
    SOURCES,
    BadMessage,
    PeerLeft,
    ServerMessage,
    peer_joined,
    peer_updated,
)
from .leave_reasons import LeaveReason
from .participant import Participant, PublishedTrack, TrackKey

RemoveSoon = Callable[["Room", Participant, LeaveReason], None]


class Room:
    def __init__(self, room_id: str, remove_soon: RemoveSoon) -> None:
        self.room_id = room_id
        self.participants: dict[str, Participant] = {}  # in join order
        self.tracks: dict[TrackKey, PublishedTrack] = {}
        self._remove_soon = remove_soon

    def __len__(self) -> int:
        return len(self.participants)

    def join(self, newcomer: Participant) -> None:
        """Take a participant in: the others are told, and it receives what is published."""
        self.participants[newcomer.info.peer_id] = newcomer
        self.broadcast(peer_joined(newcomer.info), exclude=newcomer)
        for track in self._tracks_in_join_order():
            newcomer.subscribe(track)

    def leave(self, participant: Participant) -> bool:
        """Let a participant go (False if it is not here): the others are told, and stop
        receiving its tracks."""
        participant_id = participant.info.peer_id
        if self.participants.get(participant_id) is not participant:
            return False
        del self.participants[participant_id]
        self.broadcast(PeerLeft(participant_id))
        for key in [key for key in self.tracks if key[0] == participant_id]:
            self.remove_track(key)
        return True

    def remove_soon(self, participant: Participant, reason: LeaveReason) -> None:
        """A participant found its own end (its media went silent, its connection failed)."""
        self._remove_soon(self, participant, reason)

    # Commands from a participant's client

    def publish(self, participant: Participant, source: str) -> None:
        """The client will send `source`: it negotiates it, the others see it listed."""
        info = participant.info
        if source in info.sources:
            raise BadMessage(f"publish: {source} is already published")
        info.sources = [s for s in SOURCES if s in info.sources or s == source]
        participant.sources_changed()
        self.broadcast(peer_updated(info), exclude=participant)

    def unpublish(self, participant: Participant, source: str) -> None:
        """The client stops sending `source`: nobody receives it any more."""
        info = participant.info
        if source not in info.sources:
            raise BadMessage(f"unpublish: {source} is not published")
        info.sources = [s for s in info.sources if s != source]
        self.remove_track((info.peer_id, source))
        participant.sources_changed()
        self.broadcast(peer_updated(info), exclude=participant)

    def mute(self, participant: Participant, source: str, muted: bool) -> None:
        """A flag for the others' pages; the media goes on as the client sends it."""
        assert source in MUTABLE_SOURCES, "the parser lets only camera and microphone through"
        participant.info.muted[source] = muted
        self.broadcast(peer_updated(participant.info), exclude=participant)

    # Media

    def add_track(self, track: PublishedTrack) -> None:
        """A published source's media is negotiated: everyone else receives it."""
        owner = self.participants.get(track.owner)
        if owner is None or track.source not in owner.info.sources:
            return  # it left, or unpublished the source, while the answer was applied
        self.tracks[track.key] = track
        for participant in self.participants.values():
            if participant is not owner:
                participant.subscribe(track)

    def remove_track(self, key: TrackKey) -> None:
        track = self.tracks.pop(key, None)
        if track is None:
            return
        for participant in self.participants.values():
            if participant.info.peer_id != track.owner:
                participant.unsubscribe(track)

    def broadcast(self, message: ServerMessage, *, exclude: Participant | None = None) -> None:
        for participant in self.participants.values():
            if participant is not exclude:
                participant.push(message)

    def _tracks_in_join_order(self) -> list[PublishedTrack]:
        order = {participant_id: i for i, participant_id in enumerate(self.participants)}
        sources = {source: i for i, source in enumerate(SOURCES)}
        return sorted(self.tracks.values(), key=lambda t: (order[t.owner], sources[t.source]))
