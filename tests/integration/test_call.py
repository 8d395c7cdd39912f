"""Real calls through the SFU with in-process aiortc clients on loopback."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from typing import Any

import pytest
from call_support import base_url, clients, create_room
from media import LoopedPacketTrack, video_clip
from rtc_client import RtcClient
from timing import eventually

from kaamos_sfu.appkeys import API_SECRET, ROOMS
from kaamos_sfu.logs import CHATTY_LIBRARIES, setup_logging
from kaamos_sfu.web.auth import issue_token


def nal_units(frame: bytes) -> list[bytes]:
    """H264 Annex B frame -> its NAL units, whatever start code length separates them."""
    return [unit.strip(b"\x00") for unit in re.split(b"\x00\x00\x01", frame) if unit.strip(b"\x00")]


@pytest.mark.parametrize("codec", ["VP8", "H264"])
async def test_four_peers_receive_identical_frames(make_config, make_client, codec):
    """Four clients each decode the other three's video and receive their audio; every RTP
    payload that arrives is byte for byte one its publisher sent (so the decoded frames are
    the publisher's frames), and the frames reassembled are the publisher's encoded frames."""
    http = await make_client(make_config(media={"video_codecs": [codec]}))
    room_id = await create_room(http)
    async with clients(http, room_id, 4, video_codec=codec) as peers:
        for receiver in peers:
            for sender in peers:
                if sender is not receiver:
                    await receiver.wait_decoded((sender.peer_id, "camera"), frames=15)
                    await receiver.wait_packets((sender.peer_id, "microphone"), packets=25)
        assert_forwarded_unchanged(peers, codec)


def assert_forwarded_unchanged(peers: list[RtcClient], codec: str) -> None:
    for receiver in peers:
        for sender in peers:
            if sender is receiver or "camera" not in sender.tracks:
                continue
            for source in ("camera", "microphone"):
                record = receiver.received_from(sender.peer_id, source)
                received = record.payloads.values()
                assert received and set(received) <= sender.sent_on(source), source
                # the subscriber's own mid, not the publisher's
                assert record.mids == {receiver.mid_of((sender.peer_id, source))}
            camera = receiver.received_from(sender.peer_id, "camera")
            assert camera.stamped == camera.packets  # abs-send-time on every video packet
            frames = receiver.received_from(sender.peer_id, "camera").frames
            clip = sender.tracks["camera"].clip  # type: ignore[attr-defined]
            if codec == "VP8":
                matching = [f for f in frames if f in set(clip.frames)]
            else:
                units = {u for frame in clip.frames for u in nal_units(frame)}
                matching = [f for f in frames if all(u in units for u in nal_units(f))]
            assert len(matching) == len(frames) >= 13


async def test_each_subscriber_gets_the_codec_its_publisher_sends(make_config, make_client):
    """With VP8 and H264 both offered, one publisher sends VP8 and another H264: a third
    peer receives each in its publisher's codec, frames unchanged."""
    http = await make_client(make_config(media={"video_codecs": ["VP8", "H264"]}))
    room_id = await create_room(http)
    vp8 = RtcClient(base_url(http), room_id, "V", video_codec="VP8")
    h264 = RtcClient(base_url(http), room_id, "H", video_codec="H264")
    try:
        await vp8.join()
        await h264.join()
        async with clients(http, room_id, 1, publish=()) as (viewer,):
            await viewer.wait_decoded((vp8.peer_id, "camera"), frames=10)
            await viewer.wait_decoded((h264.peer_id, "camera"), frames=10)
            offer = [m for m in viewer.messages if m["type"] == "offer"][-1]["sdp"]
            for peer, codec in ((vp8, "VP8"), (h264, "H264")):
                mid = viewer.mid_of((peer.peer_id, "camera"))
                section = offer.split(f"a=mid:{mid}\r\n")[0].rsplit("m=", 1)[1]
                section += offer.split(f"a=mid:{mid}\r\n")[1].split("m=", 1)[0]
                offered = set(re.findall(r"a=rtpmap:\d+ (\w+)/", section)) - {"rtx"}
                assert offered == {codec}
            for publisher in (vp8, h264):
                received = viewer.received_from(publisher.peer_id, "camera").payloads.values()
                assert set(received) <= publisher.sent_on("camera")
    finally:
        await asyncio.gather(vp8.close(), h264.close())


async def test_offer_shares_msid_between_a_peers_audio_and_video(make_config, make_client):
    """A remote peer's camera and microphone m-lines carry the same stream id (lip sync)."""
    http = await make_client(make_config())
    room_id = await create_room(http)
    async with clients(http, room_id, 2) as (a, b):
        await b.wait_packets((a.peer_id, "camera"), packets=5)
        offer = [m for m in b.messages if m["type"] == "offer"][-1]
        mids = {info["source"]: mid for mid, info in offer["tracks"].items()
                if info["peer_id"] == a.peer_id}
        streams = {}
        for section in offer["sdp"].split("m=")[1:]:
            mid = re.search(r"a=mid:(\S+)", section).group(1)
            msid = re.search(r"a=msid:(\S+) (\S+)", section)
            if mid in mids.values():
                streams[mid] = msid.group(1)
        assert streams[mids["camera"]] == streams[mids["microphone"]] == a.peer_id


async def test_fifth_client_gets_room_full(make_config, make_client):
    """A fifth client is refused with ROOM_FULL and close code 4409."""
    http = await make_client(make_config())
    room_id = await create_room(http)
    async with clients(http, room_id, 4, publish=()):
        fifth = RtcClient(base_url(http), room_id, "E", publish=())
        try:
            reply = await fifth.join()
            assert reply["type"] == "error" and reply["code"] == "ROOM_FULL"
            await eventually(lambda: fifth.close_code is not None, what="close")
            assert fifth.close_code == 4409
        finally:
            await fifth.close()


async def test_client_leaving_mid_call(make_config, make_client):
    """When one of three leaves, the others get peer-left, its m-lines go inactive in the
    next offer, and the remaining media keeps flowing."""
    http = await make_client(make_config())
    room_id = await create_room(http)
    async with clients(http, room_id, 3) as (a, b, c):
        await a.wait_decoded((b.peer_id, "camera"), frames=5)
        await a.wait_decoded((c.peer_id, "camera"), frames=5)
        c_mids = {a.mid_of((c.peer_id, s)) for s in ("camera", "microphone")}
        start = len(a.messages)
        await c.send({"type": "leave"})
        await eventually(lambda: c.close_code is not None, what="close after leave")
        assert c.close_code == 1000
        await a.wait_for(lambda m: m == {"type": "peer-left", "peer_id": c.peer_id}, start=start)
        offer = await a.wait_for(lambda m: m["type"] == "offer", start=start)
        assert not any(info["peer_id"] == c.peer_id for info in offer["tracks"].values())
        for mid in c_mids:
            section = offer["sdp"].split(f"a=mid:{mid}\r\n")[0].rsplit("m=", 1)[1]
            section += offer["sdp"].split(f"a=mid:{mid}\r\n")[1].split("m=", 1)[0]
            assert "a=inactive" in section
        before = a.received_from(b.peer_id, "camera").decoded
        await eventually(
            lambda: a.received_from(b.peer_id, "camera").decoded > before + 15,
            what="B's video still reaching A",
        )


async def test_joining_mid_call_decodes_keyframe_within_one_second(make_config, make_client):
    """A client joining a running call makes the SFU ask the publisher for a keyframe, and
    decodes its video within 1 s of answering, though the publisher's own keyframes are
    2 s apart."""
    http = await make_client(make_config())
    room_id = await create_room(http)
    async with clients(http, room_id, 2, keyframe_interval=1000) as (a, b):
        await b.wait_decoded((a.peer_id, "camera"), frames=10)
        camera = a.tracks["camera"]
        requests_before = camera.keyframe_requests
        late = RtcClient(base_url(http), room_id, "C")
        try:
            await late.join()
            await late.wait_for(lambda m: m["type"] == "offer" and len(m["tracks"]) >= 6)
            answered = time.monotonic()
            await late.wait_decoded((a.peer_id, "camera"), frames=1, timeout=5)
            elapsed = late.received_from(a.peer_id, "camera").first_decoded_at - answered
            assert elapsed < 1.0, f"first frame after {elapsed:.3f} s"
            assert camera.keyframe_requests > requests_before
        finally:
            await late.close()


async def test_receive_only_client_alone_gets_no_offer(make_config, make_client):
    """A receive-only client alone in a room gets no offer until someone publishes."""
    http = await make_client(make_config())
    room_id = await create_room(http)
    async with clients(http, room_id, 1, publish=()) as (viewer,):
        await viewer.wait_for(lambda m: m["type"] == "joined")
        await asyncio.sleep(1.0)
        assert not [m for m in viewer.messages if m["type"] == "offer"]
        async with clients(http, room_id, 1) as (publisher,):
            await viewer.wait_decoded((publisher.peer_id, "camera"), frames=5)
            assert all(owner[0] == publisher.peer_id for owner in viewer.offer_tracks.values())


async def test_screen_share_mline_is_freed_and_reused(make_config, make_client):
    """Unpublishing frees the screen m-line (inactive), and publishing again reuses it;
    the camera's m-line never carries a packet of the screen, and goes on meanwhile."""
    http = await make_client(make_config())
    room_id = await create_room(http)
    async with clients(http, room_id, 2) as (a, b):
        await b.wait_packets((a.peer_id, "camera"), packets=5)
        # Another clip (other bytes) stands in for a screen.
        a.tracks["screen"] = LoopedPacketTrack(video_clip("VP8", keyframe_interval=7))

        start = len(b.messages)
        await a.send({"type": "publish", "source": "screen"})
        update = await b.wait_for(lambda m: m["type"] == "peer-updated", start=start)
        assert update["peer"]["sources"] == ["camera", "microphone", "screen"]
        await b.wait_decoded((a.peer_id, "screen"), frames=5)
        camera = b.received_from(a.peer_id, "camera")
        decoded = camera.decoded
        await eventually(lambda: camera.decoded > decoded + 10, what="the camera going on")
        strangers = set(camera.payloads.values()) - a.sent_on("camera")
        assert not strangers, f"{len(strangers)} packets on the camera's m-line were not camera"
        screen_mid = b.mid_of((a.peer_id, "screen"))
        stream = re.search(rf"a=mid:{screen_mid}\r\n(?:.*\r\n)*?a=msid:(\S+)",
                           b.messages[-1]["sdp"] if b.messages[-1]["type"] == "offer" else
                           [m for m in b.messages if m["type"] == "offer"][-1]["sdp"])
        assert stream and stream.group(1) == f"{a.peer_id}-screen"

        start = len(b.messages)
        await a.send({"type": "unpublish", "source": "screen"})
        offer = await b.wait_for(lambda m: m["type"] == "offer", start=start)
        assert screen_mid not in offer["tracks"]

        start = len(b.messages)
        await a.send({"type": "publish", "source": "screen"})
        offer = await b.wait_for(
            lambda m: m["type"] == "offer"
            and {"peer_id": a.peer_id, "source": "screen"} in m["tracks"].values(),
            start=start,
        )
        assert offer["tracks"][screen_mid] == {"peer_id": a.peer_id, "source": "screen"}
        before = b.received[screen_mid].decoded
        await eventually(lambda: b.received[screen_mid].decoded > before + 5,
                         what="screen video on the reused m-line")


async def test_a_call_logs_its_events_without_sdp_or_secrets(
    make_config: Any, make_client: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """At info level a call logs room created, peer joined and peer left (with the reason)
    as JSON lines, and never an SDP body, ICE password, token or API secret; the ICE and
    DTLS libraries stay quiet."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        setup_logging("info")
        http = await make_client(make_config())
        token = issue_token(http.app[API_SECRET], "bot")
        resp = await http.post("/api/rooms/create", headers={"Authorization": f"Bearer {token}"})
        room_id = (await resp.json())["room_id"]
        async with clients(http, room_id, 2) as (a, b):
            await b.wait_decoded((a.peer_id, "camera"), frames=3)
            await a.send({"type": "leave"})
            await eventually(lambda: http.app[ROOMS].peer_count == 1, what="A gone")
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        for name in CHATTY_LIBRARIES:
            logging.getLogger(name).setLevel(logging.NOTSET)
        logging.captureWarnings(False)
    err = capsys.readouterr().err
    events = [json.loads(line) for line in err.splitlines()]
    names = [e["event"] for e in events]
    assert names.count("room created") == 1 and names.count("peer joined") == 2
    left = [e for e in events if e["event"] == "peer left"]
    assert {e["reason"] for e in left} >= {"left"}
    assert all(e["room_id"] == room_id for e in left)
    assert not [e for e in events if e["logger"].startswith(CHATTY_LIBRARIES)]
    for secret in ("v=0", "a=ice-pwd", "a=fingerprint", token, http.app[API_SECRET]):
        assert secret not in err
