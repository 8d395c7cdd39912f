"""A Janus VideoRoom participant for the load worker, over Janus's HTTP long-poll API.

Like a browser tab: one Janus session, one publisher handle (its own peer connection), and
one multistream subscriber handle per subscription (Janus offers, we answer). A participant
who joins later is received through one more subscriber handle.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

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

PLUGIN = "janus.plugin.videoroom"
REQUEST_TIMEOUT = 20.0
_transactions = itertools.count(1)


class JanusError(Exception):
    pass


class JanusSession:
    """One Janus session: requests, plus a long poll that delivers asynchronous replies."""

    def __init__(self, http: aiohttp.ClientSession, base_url: str) -> None:
        self.http = http
        self.base_url = base_url
        self.url = ""
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._poll: asyncio.Task[None] | None = None

    async def _post(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        body["transaction"] = transaction = f"t{next(_transactions)}"
        future = asyncio.get_running_loop().create_future()
        self._pending[transaction] = future
        try:
            timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
            async with self.http.post(url, json=body, timeout=timeout) as response:
                reply: dict[str, Any] = await response.json(content_type=None)
            if reply.get("janus") == "ack":  # the answer comes later, on the long poll
                reply = await asyncio.wait_for(future, REQUEST_TIMEOUT)
        finally:
            self._pending.pop(transaction, None)
        if reply.get("janus") == "error":
            raise JanusError(str(reply.get("error")))
        return reply

    async def create(self) -> JanusSession:
        reply = await self._post(self.base_url, {"janus": "create"})
        self.url = f"{self.base_url}/{reply['data']['id']}"
        self._poll = asyncio.ensure_future(self._long_poll())
        return self

    async def attach(self) -> str:
        reply = await self._post(self.url, {"janus": "attach", "plugin": PLUGIN})
        return f"{self.url}/{reply['data']['id']}"

    async def message(
        self, handle: str, body: dict[str, Any], jsep: dict[str, str] | None = None
    ) -> tuple[dict[str, Any], dict[str, str] | None]:
        request: dict[str, Any] = {"janus": "message", "body": body}
        if jsep is not None:
            request["jsep"] = jsep
        reply = await self._post(handle, request)
        data = reply.get("plugindata", {}).get("data", {})
        if "error" in data:
            raise JanusError(f"{body.get('request')}: {data['error']}")
        return data, reply.get("jsep")

    async def _long_poll(self) -> None:
        timeout = aiohttp.ClientTimeout(total=65)
        while True:
            try:
                async with self.http.get(self.url, params={"maxev": "10"}, timeout=timeout) as r:
                    events = await r.json(content_type=None)
            except (aiohttp.ClientError, TimeoutError):
                await asyncio.sleep(0.5)
                continue
            for event in events if isinstance(events, list) else [events]:
                future = self._pending.get(event.get("transaction", ""))
                if future is not None and not future.done() and event.get("janus") != "ack":
                    future.set_result(event)

    async def destroy(self) -> None:
        if self._poll is not None:
            self._poll.cancel()
        if self.url:
            try:
                await self._post(self.url, {"janus": "destroy"})
            except (aiohttp.ClientError, TimeoutError, JanusError):
                pass


async def create_room(http: aiohttp.ClientSession, base_url: str, room: int) -> None:
    """A VideoRoom like the anchor's: VP8 + Opus, no bitrate cap, PLI every 10 s at most."""
    session = await JanusSession(http, base_url).create()
    try:
        handle = await session.attach()
        await session.message(
            handle,
            {
                "request": "create",
                "room": room,
                "publishers": 6,
                "bitrate": 0,
                "fir_freq": 10,
                "audiocodec": "opus",
                "videocodec": "vp8",
                "notify_joining": False,
            },
        )
    finally:
        await session.destroy()


class JanusParticipant(Participant):
    def __init__(
        self,
        http: aiohttp.ClientSession,
        base_url: str,
        room: int,
        name: str,
        tracks: dict[str, LoopedPacketTrack],
    ) -> None:
        super().__init__(name, tracks)
        self.session = JanusSession(http, base_url)
        self.room = room
        self.feed_id: int | None = None
        self.private_id: int | None = None
        self.publisher = new_peer_connection()
        self.subscriptions: list[RTCPeerConnection] = []
        self.publishing_on(self.publisher)

    async def join(self, present: list[Participant]) -> None:
        await self.session.create()
        feeds = [p for p in present if isinstance(p, JanusParticipant)]
        await asyncio.gather(self._publish(), self._subscribe(feeds) if feeds else nothing())
        await self.wait_publishing()

    async def receive_from(self, newcomer: Participant) -> None:
        assert isinstance(newcomer, JanusParticipant)
        await self._subscribe([newcomer])

    async def _publish(self) -> None:
        handle = await self.session.attach()
        own = add_publishing_transceivers(self.publisher, self.tracks)
        await self.publisher.setLocalDescription(await self.publisher.createOffer())
        for transceiver in own:
            register_video_sender(transceiver, self.name)
        offer = {"type": "offer", "sdp": self.publisher.localDescription.sdp}
        data, jsep = await self.session.message(
            handle,
            {
                "request": "joinandconfigure",
                "ptype": "publisher",
                "room": self.room,
                "display": self.name,
                "audio": True,
                "video": True,
            },
            offer,
        )
        if jsep is None:
            raise JanusError(f"publish: no answer in {data}")
        self.feed_id = data["id"]
        self.private_id = data.get("private_id")
        await self.publisher.setRemoteDescription(RTCSessionDescription(jsep["sdp"], "answer"))

    async def _subscribe(self, publishers: list[JanusParticipant]) -> None:
        handle = await self.session.attach()
        names = {p.feed_id: p.name for p in publishers}
        body: dict[str, Any] = {
            "request": "join",
            "ptype": "subscriber",
            "room": self.room,
            "streams": [{"feed": p.feed_id} for p in publishers],
        }
        if self.private_id is not None:
            body["private_id"] = self.private_id
        data, jsep = await self.session.message(handle, body)
        if jsep is None:
            raise JanusError(f"subscribe: no offer in {data}")
        pc = new_peer_connection()
        self.subscriptions.append(pc)
        await pc.setRemoteDescription(RTCSessionDescription(jsep["sdp"], "offer"))
        feed_of_mid = {s["mid"]: s.get("feed_id") for s in data.get("streams", [])}
        for transceiver in pc.getTransceivers():
            publisher = names.get(feed_of_mid.get(transceiver.mid))
            if publisher is not None:
                key = (len(self.subscriptions), transceiver.mid)
                self.remote[key] = watch_receiver(transceiver.receiver, publisher, transceiver.kind)
        await pc.setLocalDescription(await pc.createAnswer())
        enlarge_receive_buffers(pc)
        await self.session.message(
            handle,
            {"request": "start", "room": self.room},
            {"type": "answer", "sdp": pc.localDescription.sdp},
        )

    def peer_connections(self) -> list[RTCPeerConnection]:
        return [self.publisher, *self.subscriptions]

    async def close(self) -> None:
        await self.session.destroy()
        for pc in self.peer_connections():
            await pc.close()
