"""Real calls through the SFU with in-process aiortc clients on loopback."""

from __future__ import annotations

import asyncio

from call_support import clients, create_room, eventually
from media import video_clip


async def test_two_peers_see_each_other(make_config, make_client):
    """Two clients each decode the other's video and receive its audio."""
    http = await make_client(make_config())
    room_id = await create_room(http)
    async with clients(http, room_id, 2) as (a, b):
        await a.wait_decoded((b.peer_id, "camera"), frames=10)
        await b.wait_decoded((a.peer_id, "camera"), frames=10)
        await a.wait_packets((b.peer_id, "microphone"), packets=20)
        frames = set(video_clip("VP8").frames)
        received = a.received_from(b.peer_id, "camera").frames
        assert received and all(f in frames for f in received)
