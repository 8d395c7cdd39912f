"""What a room knows of its members: the Participant protocol, and the tracks they publish.

A participant is anything that can be in a call: a browser behind a WebRTC peer
connection (`peer.Peer`), a recorder, a test fake. The room tells it what happens (typed
server messages), which published tracks to receive, and when it is removed; it never
sees how the participant talks to its client.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ..forwarding import Codec, UpTrack
from ..protocol import PeerInfo, ServerMessage
from ..stats import MediaCounts
from .leave_reasons import LeaveReason

if TYPE_CHECKING:
    from .room import Room

TrackKey = tuple[str, str]  # (participant id, source)

ID_ALPHABET = string.ascii_letters + string.digits
ID_LENGTH = 10  # docs/protocol.md: a peer_id is 10 letters and digits


def new_participant_id() -> str:
    return "".join(secrets.choice(ID_ALPHABET) for _ in range(ID_LENGTH))


@dataclass(frozen=True, eq=False)
class PublishedTrack:
    """One source a participant publishes, once its media arrives: what a subscriber needs
    to negotiate it (the exact codec) and to receive it (the UpTrack to attach to)."""

    owner: str  # participant id
    source: str
    kind: str  # "audio" or "video"
    codec: Codec
    uptrack: UpTrack

    @property
    def key(self) -> TrackKey:
        return (self.owner, self.source)


class Participant(Protocol):
    info: PeerInfo  # id, name, published sources, mute state: what the others are told

    def push(self, message: ServerMessage) -> None:
        """Send a message to this participant's client (queued: never blocks the room)."""

    def admitted(self, room: Room) -> None:
        """The room took it in (after `joined`): it may start its media."""

    def sources_changed(self) -> None:
        """`info.sources` changed: the client starts or stops sending a source."""

    def subscribe(self, track: PublishedTrack) -> None:
        """Receive this track from now on."""

    def unsubscribe(self, track: PublishedTrack) -> None:
        """Stop receiving this track (it was unpublished, or its owner left)."""

    async def close(self, reason: LeaveReason) -> None:
        """Removed from the room: let go of its media and its client."""

    def media_counts(self) -> MediaCounts:
        """What its forwarding counted so far (for /metrics)."""
        ...
