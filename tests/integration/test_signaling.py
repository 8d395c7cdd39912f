"""Signaling refusals, bad input, endings and vanished peers, over a real WebSocket."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import struct
import time

import aiohttp
import pytest
from aiortc import RTCSessionDescription
from call_support import base_url, clients, create_room, expect_close, receive_json
from rtc_client import RtcClient
from timing import eventually, scaled

from kaamos_sfu.appkeys import API_SECRET, REGISTRY, ROOMS
from kaamos_sfu.protocol import PeerLeft
from kaamos_sfu.signaling.connection import MAX_QUEUED, WebSocketConnection
from kaamos_sfu.web.auth import issue_token


async def raw_socket(http, path: str) -> aiohttp.ClientWebSocketResponse:
    return await http.ws_connect(path)


JOIN = {"type": "join", "name": "Alice", "publish": []}


@pytest.mark.parametrize(
    ("room_id", "code", "close_code"),
    [("not-a-room", "INVALID_ROOM_ID", 4400), ("AAAAAAAAAA", "ROOM_NOT_FOUND", 4404)],
)
async def test_join_refusals_arrive_as_error_then_close(client, room_id, code, close_code):
    """A bad or unknown room id is an `error` message on an accepted socket, then a close."""
    ws = await raw_socket(client, f"/ws/{room_id}")
    await ws.send_json(JOIN)
    reply = await receive_json(ws)
    assert reply["type"] == "error" and reply["code"] == code and reply["message"]
    await expect_close(ws, close_code)


async def test_expired_room_is_refused(make_config, make_client):
    """Joining a room past its expiry gets ROOM_EXPIRED and close 4410."""
    http = await make_client(make_config(rooms={"expire_after_hours": 0.0001}))
    room_id = await create_room(http)
    await asyncio.sleep(0.5)
    ws = await raw_socket(http, f"/ws/{room_id}")
    await ws.send_json(JOIN)
    assert (await receive_json(ws))["code"] == "ROOM_EXPIRED"
    await expect_close(ws, 4410)


BAD_FRAMES = [
    "not json",
    "[1, 2]",
    json.dumps({"name": "no type"}),
    json.dumps({"type": "dance"}),
    json.dumps({"type": "join"}),
    json.dumps({"type": "join", "name": ""}),
    json.dumps({"type": "join", "name": "A", "publish": ["camera", "camera"]}),
    json.dumps({"type": "join", "name": "A", "publish": ["hologram"]}),
    json.dumps({"type": "answer", "sdp": "v=0\r\n"}),  # before join
]


async def test_every_bad_message_gets_bad_message_and_the_socket_stays(make_config, make_client):
    """Each malformed or misplaced frame gets BAD_MESSAGE; a valid join still works after."""
    client = await make_client(make_config(signaling={"max_bad_messages": 100}))
    room_id = await create_room(client)
    ws = await raw_socket(client, f"/ws/{room_id}")
    for frame in BAD_FRAMES:
        await ws.send_str(frame)
        reply = await receive_json(ws)
        assert reply["type"] == "error" and reply["code"] == "BAD_MESSAGE", (frame, reply)
    await ws.send_bytes(b"\x00binary")
    assert (await receive_json(ws))["code"] == "BAD_MESSAGE"
    await ws.send_str(json.dumps({"type": "join", "name": "x" * 70_000}))
    oversized = await receive_json(ws)
    assert oversized["code"] == "BAD_MESSAGE" and "65536" in oversized["message"]
    await ws.send_json(JOIN)
    assert (await receive_json(ws))["type"] == "joined"
    for frame in [
        json.dumps({"type": "join", "name": "again"}),
        json.dumps({"type": "answer", "sdp": "v=0\r\n"}),
        json.dumps({"type": "mute", "source": "screen", "muted": True}),
        json.dumps({"type": "mute", "source": "camera", "muted": "yes"}),
        json.dumps({"type": "unpublish", "source": "camera"}),
        json.dumps({"type": "ice-candidate", "candidate": "candidate:1 1 udp", "sdpMid": None}),
    ]:
        await ws.send_str(frame)
        reply = await receive_json(ws)
        assert reply["code"] == "BAD_MESSAGE", (frame, reply)
    await ws.close()


async def test_flood_of_bad_messages_closes_with_4429(make_config, make_client):
    """More bad messages than signaling.max_bad_messages in 10 s closes the socket."""
    http = await make_client(make_config(signaling={"max_bad_messages": 3}))
    room_id = await create_room(http)
    ws = await raw_socket(http, f"/ws/{room_id}")
    for _ in range(4):
        await ws.send_str("{")
    for _ in range(4):
        assert (await receive_json(ws))["code"] == "BAD_MESSAGE"
    await expect_close(ws, 4429)


async def test_socket_without_join_is_closed(make_config, make_client):
    """A socket that never joins is closed with 4408 after signaling.join_timeout_seconds."""
    http = await make_client(make_config(signaling={"join_timeout_seconds": 0.3}))
    room_id = await create_room(http)
    ws = await raw_socket(http, f"/ws/{room_id}")
    await expect_close(ws, 4408)


async def test_bad_answer_keeps_the_offer_pending(make_config, make_client):
    """An unusable answer gets BAD_MESSAGE; the same offer stays pending and a corrected
    answer brings the media up."""
    http = await make_client(make_config())
    room_id = await create_room(http)
    async with clients(http, room_id, 1) as (a,):
        b = RtcClient(base_url(http), room_id, "B", auto_answer=False)
        try:
            await b.join()
            offer = await b.wait_for(lambda m: m["type"] == "offer")
            start = len(b.messages)
            await b.send({"type": "answer", "sdp": "v=0\r\nthis is not sdp\r\n"})
            error = await b.wait_for(lambda m: m["type"] == "error", start=start)
            assert error["code"] == "BAD_MESSAGE"
            b.auto_answer = True  # for the renegotiations that follow
            await b.answer(offer)
            await b.wait_decoded((a.peer_id, "camera"), frames=5)
            await a.wait_decoded((b.peer_id, "camera"), frames=5)
        finally:
            await b.close()


async def test_unanswered_offer_ends_the_connection(make_config, make_client):
    """A client that never answers is disconnected with 4408; the others get peer-left."""
    http = await make_client(make_config(signaling={"answer_timeout_seconds": 0.5}))
    room_id = await create_room(http)
    async with clients(http, room_id, 1) as (a,):
        silent = RtcClient(base_url(http), room_id, "B", auto_answer=False)
        try:
            await silent.join()
            await eventually(lambda: silent.close_code is not None, timeout=5, what="close")
            assert silent.close_code == 4408
            await a.wait_for(lambda m: m == {"type": "peer-left", "peer_id": silent.peer_id})
        finally:
            await silent.close()


async def test_a_flooding_peer_does_not_disturb_the_others(make_config, make_client):
    """While one peer floods garbage until it is cut off, the others' media keeps flowing."""
    http = await make_client(make_config())
    room_id = await create_room(http)
    async with clients(http, room_id, 3) as (a, b, noisy):
        await a.wait_decoded((b.peer_id, "camera"), frames=5)
        before = a.received_from(b.peer_id, "camera").decoded
        for _ in range(30):
            await noisy.send("garbage")
        await eventually(lambda: noisy.close_code == 4429, what="flood close")
        await a.wait_for(lambda m: m == {"type": "peer-left", "peer_id": noisy.peer_id})
        await eventually(
            lambda: a.received_from(b.peer_id, "camera").decoded > before + 30,
            what="B's video still reaching A",
        )


async def test_vanished_client_is_removed_within_the_media_timeout(make_config, make_client):
    """A client that vanishes (no close, no pongs, no media, no ICE checks) is removed
    within rooms.peer_timeout_seconds (10 s), long before the WebSocket timeout."""
    http = await make_client(make_config())
    room_id = await create_room(http)
    async with clients(http, room_id, 2) as (a, ghost):
        await a.wait_decoded((ghost.peer_id, "camera"), frames=5)
        ghost.vanish()
        vanished = time.monotonic()
        await a.wait_for(lambda m: m == {"type": "peer-left", "peer_id": ghost.peer_id},
                         timeout=12)
        assert time.monotonic() - vanished < 10


async def test_a_socket_that_answers_no_pings_is_closed_after_the_ping_timeout(
    make_config, make_client
):
    """A joined socket that stops answering pings (its media still alive) is closed with
    4408 once signaling.ping_timeout_seconds pass without a frame, not at the first miss."""
    config = make_config(signaling={"ping_interval_seconds": 1.0, "ping_timeout_seconds": 4.0})
    http = await make_client(config)
    room_id = await create_room(http)
    ws = await http.ws_connect(f"/ws/{room_id}", autoping=False)
    await ws.send_json(JOIN)
    assert (await receive_json(ws))["type"] == "joined"
    last_frame = time.monotonic()
    pings = 0
    while True:
        message = await ws.receive(timeout=scaled(8))
        if message.type != aiohttp.WSMsgType.PING:
            break
        pings += 1
    assert message.type == aiohttp.WSMsgType.CLOSE and message.data == 4408, message
    assert 3.5 <= time.monotonic() - last_frame <= 6.0
    assert pings >= 3


async def test_late_pongs_keep_a_socket(make_config, make_client):
    """Pongs that come 4 s late, after several more pings, keep a socket open."""
    config = make_config(signaling={"ping_interval_seconds": 1.0, "ping_timeout_seconds": 6.0})
    http = await make_client(config)
    room_id = await create_room(http)
    ws = await http.ws_connect(f"/ws/{room_id}", autoping=False)
    await ws.send_json(JOIN)
    assert (await receive_json(ws))["type"] == "joined"
    late: list[asyncio.Task[None]] = []

    async def pong_later(data: bytes) -> None:
        await asyncio.sleep(4.0)
        await ws.pong(data)

    deadline = time.monotonic() + 9
    while time.monotonic() < deadline:
        try:
            message = await ws.receive(timeout=deadline - time.monotonic())
        except TimeoutError:
            break
        assert message.type == aiohttp.WSMsgType.PING, message
        late.append(asyncio.ensure_future(pong_later(message.data)))
    assert not ws.closed and len(late) >= 6
    for task in late:
        task.cancel()
    await ws.close()


async def test_a_socket_that_only_answers_pings_gets_no_more_than_the_join_timeout(
    make_config, make_client
):
    """Pongs do not extend the join timeout: a socket that never joins is closed with 4408."""
    # Longer than the 5 s between pings of aiohttp's own heartbeat, which restarted
    # receive()'s timeout at every pong.
    config = make_config(
        signaling={
            "join_timeout_seconds": 6.0,
            "ping_interval_seconds": 0.5,
            "ping_timeout_seconds": 5.0,
        }
    )
    http = await make_client(config)
    opened = time.monotonic()
    ws = await http.ws_connect("/ws/AAAAAAAAAA", autoping=True)  # aiohttp answers pings
    async with asyncio.timeout(scaled(10)):  # not receive(timeout=): pings would restart it
        message = await ws.receive()
    assert message.type == aiohttp.WSMsgType.CLOSE and message.data == 4408, message
    assert 5.8 <= time.monotonic() - opened <= 7.5


async def test_deleting_a_room_ends_the_call(make_config, make_client):
    """DELETE /api/rooms/{id}: every peer gets room-ended and close 4001."""
    http = await make_client(make_config())
    room_id = await create_room(http)
    async with clients(http, room_id, 2, publish=()) as (a, b):
        token = issue_token(http.server.app[API_SECRET], "tests")
        response = await http.delete(
            f"/api/rooms/{room_id}", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status == 204
        for peer in (a, b):
            await peer.wait_for(lambda m: m == {"type": "room-ended"})
            await eventually(lambda peer=peer: peer.close_code is not None, what="close")
            assert peer.close_code == 4001
        assert await http.server.app[REGISTRY].get(room_id) is None


async def test_leave_closes_with_1000_and_room_reports_participants(make_config, make_client):
    """GET /api/rooms/{id} counts participants; after leave the socket closes with 1000."""
    http = await make_client(make_config())
    room_id = await create_room(http)
    async with clients(http, room_id, 2, publish=()) as (a, b):
        info = await (await http.get(f"/api/rooms/{room_id}")).json()
        assert info["participants"] == 2 and info["active"] is True
        await a.send({"type": "leave"})
        await eventually(lambda: a.close_code is not None, what="close")
        assert a.close_code == 1000
        await b.wait_for(lambda m: m == {"type": "peer-left", "peer_id": a.peer_id})
        info = await (await http.get(f"/api/rooms/{room_id}")).json()
        assert info["participants"] == 1


async def test_peer_whose_media_dies_is_removed_though_its_socket_lives(make_config, make_client):
    """A client whose WebSocket stays up but whose media transport goes silent (no RTP,
    RTCP or ICE consent) is removed within rooms.peer_timeout_seconds (10 s), close 4408."""
    http = await make_client(make_config())
    room_id = await create_room(http)
    async with clients(http, room_id, 2) as (a, ghost):
        await a.wait_decoded((ghost.peer_id, "camera"), frames=5)
        ghost.silence_media()
        silent_since = time.monotonic()
        await a.wait_for(lambda m: m == {"type": "peer-left", "peer_id": ghost.peer_id},
                         timeout=12)
        assert 7.0 <= time.monotonic() - silent_since <= 10.0
        await eventually(lambda: ghost.close_code is not None, what="close")
        assert ghost.close_code == 4408


class OddExtensionIdClient(RtcClient):
    """Answers with abs-send-time on extension id 20, which one-byte headers cannot carry."""

    async def answer(self, offer: dict) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        sdp = re.sub(r"a=extmap:\d+ (http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time)",
                     r"a=extmap:20 \1", self.pc.localDescription.sdp)
        await self.send({"type": "answer", "sdp": sdp})


async def test_answer_with_unusable_extension_id_is_refused_and_harms_no_one(
    make_config, make_client
):
    """An answer whose header extension ids do not fit one-byte headers gets BAD_MESSAGE,
    and the call between the others goes on."""
    http = await make_client(make_config())
    room_id = await create_room(http)
    async with clients(http, room_id, 2) as (a, b):
        await b.wait_decoded((a.peer_id, "camera"), frames=5)
        odd = OddExtensionIdClient(base_url(http), room_id, "C", publish=())
        try:
            await odd.join()
            error = await odd.wait_for(lambda m: m["type"] == "error")
            assert error["code"] == "BAD_MESSAGE" and "extension id 20" in error["message"]
            before = b.received_from(a.peer_id, "camera").packets
            await eventually(
                lambda: b.received_from(a.peer_id, "camera").packets > before + 30,
                what="A's video still reaching B",
            )
        finally:
            await odd.close()


async def test_peer_that_closes_its_connection_but_keeps_its_socket_is_removed(
    make_config, make_client
):
    """A client that closes its RTCPeerConnection but leaves its WebSocket open is removed
    at once: the others get peer-left, and it gets close 4408."""
    http = await make_client(make_config())
    room_id = await create_room(http)
    async with clients(http, room_id, 2) as (a, b):
        await a.wait_decoded((b.peer_id, "camera"), frames=5)
        closed_at = time.monotonic()
        await b.pc.close()
        await a.wait_for(lambda m: m == {"type": "peer-left", "peer_id": b.peer_id}, timeout=5)
        assert time.monotonic() - closed_at < 3
        await eventually(lambda: b.close_code is not None, what="close")
        assert b.close_code == 4408


async def test_frame_over_one_mebibyte_closes_with_1009(client):
    """A frame above 1 MiB is not buffered: the socket closes with 1009."""
    ws = await raw_socket(client, "/ws/AAAAAAAAAA")
    await ws.send_str("x" * (1024 * 1024 + 1))
    await expect_close(ws, 1009)


async def test_a_client_still_sending_a_huge_frame_reads_1009(client):
    """A 20 MiB frame: the client can finish sending it and then reads the close frame
    with 1009; the server does not reset the connection under it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET /ws/AAAAAAAAAA HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    await reader.readuntil(b"\r\n\r\n")
    size = 20 * 1024 * 1024
    received = asyncio.ensure_future(reader.read())  # everything until the server's EOF
    writer.write(bytes([0x81, 0x80 | 127]) + struct.pack("!Q", size) + b"\0\0\0\0")
    chunk = b"x" * 65536
    try:
        for _ in range(size // len(chunk)):
            writer.write(chunk)
            await writer.drain()  # ConnectionResetError if the server reset the connection
        data = await asyncio.wait_for(received, scaled(5))
    finally:
        received.cancel()
        writer.close()
    assert data[:4] == bytes([0x88, 0x02]) + struct.pack("!H", 1009), data[:16]


async def test_flood_of_valid_messages_closes_with_4429(make_config, make_client):
    """More messages of any kind than signaling.max_messages in 10 s closes the socket."""
    http = await make_client(make_config(signaling={"max_messages": 50}))
    room_id = await create_room(http)
    async with clients(http, room_id, 2, publish=()) as (a, spammer):
        for index in range(60):
            await spammer.send({"type": "mute", "source": "microphone", "muted": index % 2 == 0})
        await eventually(lambda: spammer.close_code is not None, what="close")
        assert spammer.close_code == 4429
        await a.wait_for(lambda m: m == {"type": "peer-left", "peer_id": spammer.peer_id})


class StuckSocket:
    """A WebSocket whose client stopped reading: every send blocks."""

    closed = False

    def __init__(self) -> None:
        self.close_codes: list[int] = []
        self.sent = 0

    async def send_json(self, message: dict) -> None:
        self.sent += 1
        await asyncio.Event().wait()

    async def close(self, code: int, message: bytes) -> None:
        self.close_codes.append(code)
        self.closed = True


async def test_a_client_that_stops_reading_never_blocks_senders_and_is_dropped():
    """Pushing to a client that stopped reading returns at once; 256 messages behind, it is
    closed with 4503."""
    socket = StuckSocket()
    connection = WebSocketConnection(socket)  # type: ignore[arg-type]
    started = time.monotonic()
    for index in range(MAX_QUEUED + 10):
        connection.push(PeerLeft(str(index)))
    assert time.monotonic() - started < 0.5
    await eventually(lambda: socket.close_codes == [4503], timeout=5, what="close 4503")
    connection.stop()


async def test_frame_size_limit_counts_bytes_not_characters(client):
    """65536 is a byte limit: 40000 two-byte characters (80000 bytes) are refused."""
    ws = await raw_socket(client, "/ws/AAAAAAAAAA")
    await ws.send_str(json.dumps({"type": "join", "name": "é" * 40_000}, ensure_ascii=False))
    reply = await receive_json(ws)
    assert reply["code"] == "BAD_MESSAGE" and "65536 bytes" in reply["message"]
    await ws.close()


async def test_server_shutdown_closes_every_peer_with_1001_and_no_departures(
    make_config, make_client
):
    """On shutdown each peer's socket closes with 1001, and nobody is first told of the
    others leaving one by one."""
    http = await make_client(make_config())
    room_id = await create_room(http)
    async with clients(http, room_id, 3, publish=()) as peers:
        await http.close()
        for peer in peers:
            await eventually(lambda peer=peer: peer.close_code is not None, what="close")
            assert peer.close_code == 1001
            assert not any(m["type"] == "peer-left" for m in peer.messages)


async def test_an_offer_on_a_connection_that_closed_meanwhile_is_not_at_capacity(
    make_config, make_client, monkeypatch
):
    """An offer made while the peer's media connection has just closed (its removal not yet
    done) has no candidate; that is not 'No free media port' (AT_CAPACITY)."""
    http = await make_client(make_config())
    room_id = await create_room(http)
    async with clients(http, room_id, 1) as (a,):
        await eventually(lambda: a.pc.connectionState == "connected", what="connected")
        room = http.server.app[ROOMS].rooms[room_id]
        monkeypatch.setattr(room, "remove_soon", lambda *args: None)  # the removal lags
        peer = room.participants[a.peer_id]
        start = len(a.messages)
        # The ICE connection ends (as aioice ended it when consent failed): its candidates go.
        await peer.pc.getTransceivers()[0].receiver.transport.transport._connection.close()
        peer.info.sources.remove("microphone")  # so that the plan frees an m-line
        peer.request_offer()
        await asyncio.sleep(1.0)
        assert [m for m in a.messages[start:] if m["type"] == "error"] == []
