"""A participant of the naive aiortc relay (bench/naive_relay.py): one publishing peer
connection, and one receiving peer connection per subscription (the relay offers)."""

from __future__ import annotations

import asyncio

import aiohttp
from aiortc import RTCPeerConnection, RTCSessionDescription
from media import LoopedPacketTrack

from .loadclient import (
    enlarge_receive_buffers,
    new_peer_connection,
    register_video_sender,
    watch_receiver,
)
from .participant import Participant, add_publishing_transceivers, nothing


class RelayParticipant(Participant):
    def __init__(
        self,
        http: aiohttp.ClientSession,
        base_url: str,
        room: str,
        name: str,
        tracks: dict[str, LoopedPacketTrack],
    ) -> None:
        super().__init__(name, tracks)
        self.http = http
        self.base_url = base_url
        self.room = room
        self.publisher = new_peer_connection()
        self.subscriptions: list[RTCPeerConnection] = []
        self.publishing_on(self.publisher)

    async def _post(self, path: str, body: dict[str, object]) -> dict[str, object]:
        async with self.http.post(self.base_url + path, json=body) as response:
            response.raise_for_status()
            reply: dict[str, object] = await response.json()
            return reply

    async def join(self, present: list[Participant]) -> None:
        await asyncio.gather(self._publish(), self._subscribe(present) if present else nothing())
        await self.wait_publishing()

    async def receive_from(self, newcomer: Participant) -> None:
        await self._subscribe([newcomer])

    async def _publish(self) -> None:
        own = add_publishing_transceivers(self.publisher, self.tracks)
        await self.publisher.setLocalDescription(await self.publisher.createOffer())
        for transceiver in own:
            register_video_sender(transceiver, self.name)
        reply = await self._post(
            "/publish",
            {"room": self.room, "name": self.name, "sdp": self.publisher.localDescription.sdp},
        )
        await self.publisher.setRemoteDescription(
            RTCSessionDescription(str(reply["sdp"]), "answer")
        )

    async def _subscribe(self, publishers: list[Participant]) -> None:
        reply = await self._post(
            "/subscribe", {"room": self.room, "publishers": [p.name for p in publishers]}
        )
        pc = new_peer_connection()
        self.subscriptions.append(pc)
        await pc.setRemoteDescription(RTCSessionDescription(str(reply["sdp"]), "offer"))
        owners = reply["tracks"]
        assert isinstance(owners, dict)
        for transceiver in pc.getTransceivers():
            publisher = owners.get(transceiver.mid)
            if publisher is not None:
                key = (len(self.subscriptions), transceiver.mid)
                self.remote[key] = watch_receiver(transceiver.receiver, publisher, transceiver.kind)
        await pc.setLocalDescription(await pc.createAnswer())
        enlarge_receive_buffers(pc)
        await self._post("/answer", {"id": reply["id"], "sdp": pc.localDescription.sdp})

    def peer_connections(self) -> list[RTCPeerConnection]:
        return [self.publisher, *self.subscriptions]

    async def close(self) -> None:
        for pc in self.peer_connections():
            await pc.close()
