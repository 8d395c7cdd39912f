"""What the load worker needs from one participant of a call, whatever the system."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod

from aiortc import RTCPeerConnection, RTCRtpSender, RTCRtpTransceiver
from media import LoopedPacketTrack

from .loadclient import TrackStats


class Participant(ABC):
    """One person in a room: publishes camera and microphone, receives the others."""

    def __init__(self, name: str, tracks: dict[str, LoopedPacketTrack]) -> None:
        self.name = name
        self.tracks = tracks
        self.remote: dict[object, TrackStats] = {}  # per receiving m-line
        self._publishing = asyncio.Event()

    def publishing_on(self, pc: RTCPeerConnection) -> None:
        """`pc` carries our own media: joining ends once it connects."""

        def changed() -> None:
            if pc.connectionState == "connected":
                self._publishing.set()

        pc.on("connectionstatechange", changed)

    async def wait_publishing(self, timeout: float = 15.0) -> None:
        await asyncio.wait_for(self._publishing.wait(), timeout)

    @abstractmethod
    async def join(self, present: list[Participant]) -> None:
        """Join and publish; receive everyone in `present` (already publishing). Returns
        once this participant's own media is flowing to the SFU."""

    async def receive_from(self, newcomer: Participant) -> None:
        """Start receiving a participant who joined after us (an SFU that renegotiates
        by itself needs nothing here)."""

    @abstractmethod
    def peer_connections(self) -> list[RTCPeerConnection]: ...

    @abstractmethod
    async def close(self) -> None: ...

    def sent_packets(self) -> int:
        """RTP packets this participant's senders sent (what the SFU received from it)."""
        return sum(
            s._RTCRtpSender__packet_count  # type: ignore[attr-defined] # no public counter
            for pc in self.peer_connections()
            for s in pc.getSenders()
            if s.track is not None
        )

    def first_packets(self, publishers: set[str]) -> list[float]:
        """Arrival time of the first packet of each track received from `publishers`."""
        return [
            t.first_at
            for t in self.remote.values()
            if t.publisher in publishers and t.first_at is not None
        ]


def add_publishing_transceivers(
    pc: RTCPeerConnection, tracks: dict[str, LoopedPacketTrack]
) -> list[RTCRtpTransceiver]:
    """Send-only microphone (Opus) and camera (VP8 + RTX) for a client-offered peer
    connection; returns the video transceivers."""
    video = []
    for source in ("microphone", "camera"):
        kind = "audio" if source == "microphone" else "video"
        transceiver = pc.addTransceiver(tracks[source], direction="sendonly")
        wanted = ("video/VP8", "video/rtx") if kind == "video" else ("audio/opus",)
        transceiver.setCodecPreferences(
            [c for c in RTCRtpSender.getCapabilities(kind).codecs if c.mimeType in wanted]
        )
        if kind == "video":
            video.append(transceiver)
    return video


async def nothing() -> None:
    return None
