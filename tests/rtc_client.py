"""An independent aiortc client speaking docs/protocol.md, instrumented for assertions.

It does what a client author would: answers every offer, attaches its own tracks by mid
(never with addTrack), trickles nothing (aiortc gathers before answering), and records
what a user would see: encoded frames received per remote track, frames decoded, audio
packets, sender reports.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiortc import (
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtp import (
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RtcpPsfbPacket,
    RtcpSrPacket,
    RtpPacket,
    is_rtcp,
)
from media import KEYFRAME_INTERVAL, LoopedPacketTrack, opus_clip, video_clip
from timing import scaled

from kaamos_sfu.rtc_bridge import close_peer_connection, new_peer_connection
from kaamos_sfu.rtc_bridge.consent import keep_consent

TrackKey = tuple[str, str]
MAX_RECORDED_PAYLOADS = 20_000  # per stream: about 5 minutes of test video


@dataclass
class Received:
    """What arrived on one of our receiving m-lines."""

    packets: int = 0
    sequences: list[int] = field(default_factory=list)
    payloads: dict[int, bytes] = field(default_factory=dict)  # last payload per sequence
    timestamps: dict[int, int] = field(default_factory=dict)  # RTP timestamp per sequence
    ssrc: int | None = None
    mids: set[str] = field(default_factory=set)  # sdes:mid header extension values seen
    stamped: int = 0  # packets carrying abs-send-time
    frames: list[bytes] = field(default_factory=list)  # encoded frames, before decoding
    decoded: int = 0
    first_decoded_at: float | None = None
    sender_reports: list[tuple[float, int, int]] = field(default_factory=list)


class RtcClient:
    def __init__(
        self,
        base_url: str,
        room_id: str,
        name: str,
        publish: tuple[str, ...] = ("camera", "microphone"),
        video_codec: str = "VP8",
        keyframe_interval: int = KEYFRAME_INTERVAL,
        auto_answer: bool = True,
        decode: bool = True,
        resolve: bool = True,
    ) -> None:
        self.base_url = base_url
        self.room_id = room_id
        self.name = name
        self.publish = publish
        self.auto_answer = auto_answer
        self.video_codec = video_codec
        self.decode = decode  # False: count packets and frames, skip the decoder (benchmarks)
        # Look up the room's signaling_url before connecting, as clients must (False: go
        # straight to base_url's /ws/<room_id>, and get WRONG_NODE if it is elsewhere).
        self.resolve = resolve
        self.ws_url: str | None = None  # the WebSocket joined last
        self.tracks: dict[str, MediaStreamTrack] = {}
        if "camera" in publish:
            self.tracks["camera"] = LoopedPacketTrack(
                video_clip(video_codec, keyframe_interval=keyframe_interval)
            )
        if "microphone" in publish:
            self.tracks["microphone"] = LoopedPacketTrack(opus_clip())
        self.pc = new_peer_connection([])  # max-bundle, no STUN; its tasks end with close()
        self.pc.on("track", self._on_track)
        self.peer_id: str | None = None
        self.messages: list[dict[str, Any]] = []
        self.offer_tracks: dict[str, TrackKey] = {}
        self.received: dict[str, Received] = defaultdict(Received)
        self.drop_once: set[int] = set()  # SSRCs whose next packet the "network" loses
        self.dropped: dict[int, int] = {}  # SSRC -> sequence number lost
        self.lose_outgoing_once: set[int] = set()  # our SSRCs whose next packet is lost
        self.lost_outgoing: dict[int, tuple[int, bytes]] = {}  # SSRC -> (sequence, payload)
        self.sent_payloads: dict[int, set[bytes]] = defaultdict(set)  # SSRC -> RTP payloads
        self._session: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._new_message = asyncio.Event()
        self._hooked: set[int] = set()
        self.close_code: int | None = None

    # Signaling

    async def connect(self, ws_url: str | None = None) -> None:
        """Open the WebSocket: `ws_url`, else the room's signaling_url (with `resolve`), else
        /ws/<room_id> on base_url (docs/protocol.md, "Which node to connect to")."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
        self.ws_url = ws_url or await self._signaling_url()
        self.ws = await self._session.ws_connect(self.ws_url, autoping=True)
        self._reader = asyncio.ensure_future(self._read())

    async def _signaling_url(self) -> str:
        fallback = self.base_url.replace("http", "ws", 1) + f"/ws/{self.room_id}"
        if not self.resolve:
            return fallback
        assert self._session is not None
        async with self._session.get(f"{self.base_url}/api/rooms/{self.room_id}") as response:
            body = await response.json() if response.status == 200 else {}
        return str(body.get("signaling_url") or fallback)

    async def join(self) -> dict[str, Any]:
        """Connect, send join, and return `joined` or `error`; a WRONG_NODE error is
        followed to the node it names (at most 3 times, as the protocol says)."""
        if self.ws is None:
            await self.connect()
        for redirects in range(4):
            start = len(self.messages)
            await self.send({"type": "join", "name": self.name, "publish": list(self.publish)})
            reply = await self.wait_for(lambda m: m["type"] in ("joined", "error"), start=start)
            if reply["type"] == "error" and reply["code"] == "WRONG_NODE" and redirects < 3:
                await self._disconnect()
                await self.connect(reply["signaling_url"])
                continue
            break
        if reply["type"] == "joined":
            self.peer_id = reply["peer_id"]
        return reply

    async def _disconnect(self) -> None:
        assert self.ws is not None and self._reader is not None
        await self.ws.close()
        await asyncio.gather(self._reader, return_exceptions=True)
        self.close_code = None

    async def send(self, message: dict[str, Any] | str) -> None:
        assert self.ws is not None
        await self.ws.send_str(message if isinstance(message, str) else json.dumps(message))

    async def wait_for(
        self, predicate: Any, timeout: float = 10.0, start: int = 0
    ) -> dict[str, Any]:
        """The first message (from index `start`) matching `predicate`, within `timeout`
        seconds (scaled: tests/timing.py)."""
        deadline = time.monotonic() + scaled(timeout)
        index = start
        while True:
            while index < len(self.messages):
                if predicate(self.messages[index]):
                    return self.messages[index]
                index += 1
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{self.name}: no matching message in {self.messages[start:]}")
            self._new_message.clear()
            try:
                await asyncio.wait_for(self._new_message.wait(), remaining)
            except TimeoutError:
                pass

    async def _read(self) -> None:
        assert self.ws is not None
        async for frame in self.ws:
            if frame.type != aiohttp.WSMsgType.TEXT:
                break
            message = json.loads(frame.data)
            self.messages.append(message)
            self._new_message.set()
            if message["type"] == "offer" and self.auto_answer:
                await self.answer(message)
        self.close_code = self.ws.close_code
        self._new_message.set()

    async def answer(self, offer: dict[str, Any]) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
        self.offer_tracks = {mid: (t["peer_id"], t["source"]) for mid, t in offer["tracks"].items()}
        self._instrument_network(self.pc.getTransceivers()[0])
        for transceiver in self.pc.getTransceivers():
            self._instrument(transceiver)
            owner = self.offer_tracks.get(transceiver.mid)
            if owner is not None and owner[0] == self.peer_id:
                # Attach by mid: addTrack could pick a remote peer's m-line.
                transceiver.direction = "sendonly"
                transceiver.sender.replaceTrack(self.tracks.get(owner[1]))
                if transceiver.kind == "video":
                    self._prefer_video_codec(transceiver)
                    self._answer_keyframe_requests(transceiver)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        await self.send({"type": "answer", "sdp": self.pc.localDescription.sdp})

    def _answer_keyframe_requests(self, transceiver: RTCRtpTransceiver) -> None:
        """A PLI or FIR for our video makes its track jump to the next keyframe."""
        sender = transceiver.sender
        if id(sender) in self._hooked:
            return
        self._hooked.add(id(sender))
        handle = sender._handle_rtcp_packet

        async def on_rtcp(packet: Any) -> None:
            if isinstance(packet, RtcpPsfbPacket) and packet.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
                track = sender.track
                if isinstance(track, LoopedPacketTrack):
                    track.request_keyframe()
            await handle(packet)

        sender._handle_rtcp_packet = on_rtcp

    def _prefer_video_codec(self, transceiver: RTCRtpTransceiver) -> None:
        """Answer with our clip's codec first: aiortc (like a browser) sends with the first
        codec of its answer. aiortc applies setCodecPreferences only to the m-lines that
        exist before the offer arrives, so reorder the negotiated list directly."""
        codecs = transceiver._codecs
        preferred = [c for c in codecs if c.mimeType.upper() == f"VIDEO/{self.video_codec}"]
        if preferred:
            first = preferred[0]
            rtx = [c for c in codecs if c.parameters.get("apt") == first.payloadType]
            transceiver._codecs = [first, *rtx] + [c for c in codecs if c not in (first, *rtx)]

    # What we receive

    def mid_of(self, key: TrackKey) -> str | None:
        return next((mid for mid, owner in self.offer_tracks.items() if owner == key), None)

    def sent_on(self, source: str) -> set[bytes]:
        """The RTP payloads this client has sent for one of its sources."""
        mid = self.mid_of((self.peer_id or "", source))
        sender = next(t.sender for t in self.pc.getTransceivers() if t.mid == mid)
        return self.sent_payloads[sender._ssrc]

    def received_from(self, peer_id: str, source: str) -> Received:
        mid = self.mid_of((peer_id, source))
        assert mid is not None, f"{self.name} has no m-line for {peer_id}/{source}"
        return self.received[mid]

    def _instrument(self, transceiver: RTCRtpTransceiver) -> None:
        receiver = transceiver.receiver
        if id(receiver) in self._hooked:
            return
        self._hooked.add(id(receiver))
        handle_rtp = receiver._handle_rtp_packet
        handle_rtcp = receiver._handle_rtcp_packet
        decoder_queue = receiver._RTCRtpReceiver__decoder_queue
        put = decoder_queue.put

        async def on_rtp(packet: Any, arrival_time_ms: int) -> None:
            record = self.received[transceiver.mid]
            record.packets += 1
            record.ssrc = packet.ssrc
            record.sequences.append(packet.sequence_number)
            record.payloads[packet.sequence_number] = packet.payload
            record.timestamps[packet.sequence_number] = packet.timestamp
            if packet.extensions.mid is not None:
                record.mids.add(packet.extensions.mid)
            if packet.extensions.abs_send_time is not None:
                record.stamped += 1
            await handle_rtp(packet, arrival_time_ms)

        async def on_rtcp(packet: Any) -> None:
            if isinstance(packet, RtcpSrPacket):
                info = packet.sender_info
                self.received[transceiver.mid].sender_reports.append(
                    (time.time(), info.ntp_timestamp, info.rtp_timestamp)
                )
            await handle_rtcp(packet)

        def on_frame(item: Any, *args: Any, **kwargs: Any) -> None:
            if item is None:
                put(item, *args, **kwargs)
            elif self.decode:
                self.received[transceiver.mid].frames.append(bytes(item[1].data))
                put(item, *args, **kwargs)

        receiver._handle_rtp_packet = on_rtp
        receiver._handle_rtcp_packet = on_rtcp
        decoder_queue.put = on_frame

    def _instrument_network(self, transceiver: RTCRtpTransceiver) -> None:
        """Lose chosen packets as a network would: incoming ones before SRTP (their headers
        are clear), outgoing ones before they are protected and sent."""
        ice = transceiver.receiver.transport.transport
        if id(ice) in self._hooked:
            return
        self._hooked.add(id(ice))
        # ICE consent as browsers check it (RFC 7675: retransmitted, 30 s), not aioice's
        # 0.5 s per check: a test client on a busy machine must not drop out by itself.
        keep_consent(ice._connection, on_expired=lambda: None)
        receive = ice._recv

        async def lossy_receive() -> bytes:
            while True:
                data = await receive()
                is_rtp = len(data) >= 12 and 128 <= data[0] < 192 and not 192 <= data[1] <= 223
                if is_rtp and self.drop_once:
                    ssrc = int.from_bytes(data[8:12], "big")
                    if ssrc in self.drop_once:
                        self.drop_once.discard(ssrc)
                        self.dropped[ssrc] = int.from_bytes(data[2:4], "big")
                        continue
                return data

        ice._recv = lossy_receive

        dtls = transceiver.receiver.transport
        send_rtp = dtls._send_rtp

        async def lossy_send(data: bytes) -> None:
            if not is_rtcp(data):
                packet = RtpPacket.parse(data)
                if len(self.sent_payloads[packet.ssrc]) < MAX_RECORDED_PAYLOADS:
                    self.sent_payloads[packet.ssrc].add(packet.payload)
            if self.lose_outgoing_once and not is_rtcp(data):
                ssrc = int.from_bytes(data[8:12], "big")
                if ssrc in self.lose_outgoing_once:
                    self.lose_outgoing_once.discard(ssrc)
                    packet = RtpPacket.parse(data)
                    self.lost_outgoing[ssrc] = (packet.sequence_number, packet.payload)
                    return
            await send_rtp(data)

        dtls._send_rtp = lossy_send

    def _on_track(self, track: MediaStreamTrack) -> None:
        transceiver = next(t for t in self.pc.getTransceivers() if t.receiver.track is track)
        self._tasks.append(asyncio.ensure_future(self._consume(transceiver, track)))

    async def _consume(self, transceiver: RTCRtpTransceiver, track: MediaStreamTrack) -> None:
        try:
            while True:
                await track.recv()
                record = self.received[transceiver.mid]
                record.decoded += 1
                if record.first_decoded_at is None:
                    record.first_decoded_at = time.monotonic()
        except MediaStreamError:
            pass

    async def wait_decoded(self, key: TrackKey, frames: int = 10, timeout: float = 10.0) -> None:
        await self._wait_received(key, "decoded", frames, timeout)

    async def wait_packets(self, key: TrackKey, packets: int = 10, timeout: float = 10.0) -> None:
        await self._wait_received(key, "packets", packets, timeout)

    async def _wait_received(self, key: TrackKey, counter: str, count: int, timeout: float) -> None:
        """Until the m-line carrying `key` has counted `count` decoded frames or packets,
        within `timeout` seconds (scaled: tests/timing.py)."""
        deadline = time.monotonic() + scaled(timeout)
        while time.monotonic() < deadline:
            mid = self.mid_of(key)
            if mid is not None and getattr(self.received[mid], counter) >= count:
                return
            await asyncio.sleep(0.05)
        raise TimeoutError(f"{self.name}: fewer than {count} {counter} from {key}")

    def vanish(self) -> None:
        """Be gone without a word, as a phone that lost its network: the socket is no longer
        read (no pongs), and nothing leaves the media transport (no RTP, RTCP or ICE)."""
        if self._reader is not None:
            self._reader.cancel()
        self.silence_media()

    def silence_media(self) -> None:
        """Nothing leaves the media transport any more: no RTP, RTCP or STUN."""
        ice = self.pc.getTransceivers()[0].receiver.transport.transport

        async def dead_send(*args: object, **kwargs: object) -> None:
            return None

        ice._send = dead_send
        ice._connection.send = dead_send
        for protocol in ice._connection._protocols:
            protocol.transport.sendto = lambda *args, **kwargs: None  # consent checks too

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await close_peer_connection(self.pc)  # pc.close() can leave aioice tasks behind
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
