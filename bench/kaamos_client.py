"""A Kaamos participant for the load worker: docs/protocol.md over one WebSocket and one
peer connection; the server offers and renegotiates by itself."""

from __future__ import annotations

import asyncio
import json
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
from .participant import Participant

MAX_REDIRECTS = 3


async def signaling_url(http: aiohttp.ClientSession, base_url: str, room_id: str) -> str:
    """Where to signal for this room (contract C3): the API's `signaling_url`, or this
    node's own /ws/<id> when the field is absent."""
    async with http.get(f"{base_url}/api/rooms/{room_id}") as response:
        response.raise_for_status()
        body = await response.json()
    url = body.get("signaling_url")
    return str(url) if url else base_url.replace("http", "ws", 1) + f"/ws/{room_id}"


async def join_room(
    http: aiohttp.ClientSession, base_url: str, room_id: str, join: dict[str, Any]
) -> tuple[aiohttp.ClientWebSocketResponse, dict[str, Any]]:
    """Send `join` where the room lives; returns the socket and the `joined` reply. A node
    that does not hold the room answers WRONG_NODE (and closes with 4421) naming the one
    that does: follow at most MAX_REDIRECTS of those (contract C3)."""
    url = await signaling_url(http, base_url, room_id)
    for _ in range(MAX_REDIRECTS + 1):
        ws = await http.ws_connect(url, autoping=True)
        await ws.send_str(json.dumps(join))
        reply: dict[str, Any] = await ws.receive_json(timeout=10)
        if reply.get("type") == "joined":
            return ws, reply
        await ws.close()
        if reply.get("code") != "WRONG_NODE" or not reply.get("signaling_url"):
            raise RuntimeError(f"join refused: {reply}")
        url = reply["signaling_url"]
    raise RuntimeError(f"more than {MAX_REDIRECTS} WRONG_NODE redirects")


class KaamosParticipant(Participant):
    def __init__(
        self,
        http: aiohttp.ClientSession,
        base_url: str,
        room_id: str,
        name: str,
        tracks: dict[str, LoopedPacketTrack],
    ) -> None:
        super().__init__(name, tracks)
        self.http = http
        self.base_url = base_url
        self.room_id = room_id
        self.pc = new_peer_connection()
        self.peer_id: str | None = None
        self.names: dict[str, str] = {}  # peer_id -> participant name
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self.publishing_on(self.pc)

    async def join(self, present: list[Participant]) -> None:
        join = {"type": "join", "name": self.name, "publish": list(self.tracks)}
        ws, reply = await join_room(self.http, self.base_url, self.room_id, join)
        self._ws = ws
        self.peer_id = reply["peer_id"]
        self.names = {p["peer_id"]: p["name"] for p in reply["peers"]}
        self._reader = asyncio.ensure_future(self._read(ws))
        await self.wait_publishing()

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for frame in ws:
            if frame.type != aiohttp.WSMsgType.TEXT:
                break
            message = json.loads(frame.data)
            kind = message.get("type")
            if kind == "peer-joined":
                self.names[message["peer"]["peer_id"]] = message["peer"]["name"]
            elif kind == "offer":
                await self._answer(ws, message)

    async def _answer(self, ws: aiohttp.ClientWebSocketResponse, offer: dict[str, Any]) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
        own = []
        for transceiver in self.pc.getTransceivers():
            owner = offer["tracks"].get(transceiver.mid)
            if owner is None:
                continue
            if owner["peer_id"] == self.peer_id:
                # Attach by mid (docs/protocol.md): addTrack could take a remote m-line.
                transceiver.direction = "sendonly"
                transceiver.sender.replaceTrack(self.tracks[owner["source"]])
                if transceiver.kind == "video":
                    own.append(transceiver)
            else:
                publisher = self.names.get(owner["peer_id"], owner["peer_id"])
                current = self.remote.get(transceiver.mid)
                if current is None or current.publisher != publisher:
                    self.remote[transceiver.mid] = watch_receiver(
                        transceiver.receiver, publisher, transceiver.kind
                    )
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        enlarge_receive_buffers(self.pc)
        for transceiver in own:
            register_video_sender(transceiver, self.name)
        await ws.send_str(json.dumps({"type": "answer", "sdp": self.pc.localDescription.sdp}))

    def peer_connections(self) -> list[RTCPeerConnection]:
        return [self.pc]

    async def close(self) -> None:
        if self._ws is not None:
            try:
                await self._ws.send_str(json.dumps({"type": "leave"}))
            except ConnectionError:
                pass
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
        await self.pc.close()
