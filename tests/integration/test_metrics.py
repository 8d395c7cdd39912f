"""GET /metrics: Prometheus text that moves when real media flows through the SFU."""

from __future__ import annotations

from typing import Any

from api_support import scrape, value
from call_support import clients, create_room
from timing import eventually

from kaamos_sfu.appkeys import METRICS, ROOMS

MEDIA = [
    "kaamos_rtp_packets_received_total",
    "kaamos_rtp_packets_forwarded_total",
    "kaamos_rtp_payload_bytes_forwarded_total",
    "kaamos_rtp_packets_dropped_total",
    "kaamos_nacks_received_total",
    "kaamos_retransmissions_total",
    "kaamos_nacks_sent_total",
    "kaamos_plis_received_total",
    "kaamos_plis_sent_total",
]


async def test_idle_server_metrics(client: Any) -> None:
    """A fresh server reports zero rooms, peers and media, the room-size buckets, and
    the event-loop lag histogram."""
    samples = await scrape(client)
    assert value(samples, "kaamos_rooms") == 0
    assert value(samples, "kaamos_peers") == 0
    for size in "1234":
        assert value(samples, "kaamos_rooms_by_peers", peers=size) == 0
    for name in MEDIA:
        assert value(samples, name) == 0
    assert value(samples, "kaamos_joins_total") == 0
    assert ("kaamos_event_loop_lag_seconds_count", ()) in samples
    assert value(samples, "kaamos_build_info", version="0.1.0") == 1


async def test_metrics_move_when_media_flows(make_config: Any, make_client: Any) -> None:
    """With two real aiortc peers exchanging media, packets, bytes, PLIs, NACKs and
    retransmissions count up; after a peer leaves the totals do not go down and the leave
    is counted by reason."""
    http = await make_client(make_config())
    room_id = await create_room(http)
    async with clients(http, room_id, 2) as (a, b):
        await b.wait_decoded((a.peer_id, "camera"), frames=5)
        await a.wait_decoded((b.peer_id, "camera"), frames=5)
        # Lose one packet on the way to B, so that B NACKs it and the SFU resends it.
        stream = b.received_from(a.peer_id, "camera")
        b.drop_once.add(stream.ssrc)
        await eventually(lambda: stream.ssrc in b.dropped, what="a lost packet")
        sequence = b.dropped[stream.ssrc]
        await eventually(lambda: sequence in stream.payloads, timeout=5, what="the resend")
        during = await scrape(http)
        assert value(during, "kaamos_rooms") == 1
        assert value(during, "kaamos_active_rooms") == 1
        assert value(during, "kaamos_peers") == 2
        assert value(during, "kaamos_rooms_by_peers", peers="2") == 1
        assert value(during, "kaamos_joins_total") == 2
        forwarded = value(during, "kaamos_rtp_packets_forwarded_total")
        received = value(during, "kaamos_rtp_packets_received_total")
        assert forwarded >= stream.packets  # at least what B got from A
        assert received >= forwarded / 2  # each packet goes to one subscriber
        assert value(during, "kaamos_rtp_payload_bytes_forwarded_total") > forwarded * 10
        assert value(during, "kaamos_plis_sent_total") >= 2  # a keyframe for each subscriber
        assert value(during, "kaamos_nacks_received_total") >= 1
        assert value(during, "kaamos_retransmissions_total") >= 1
        seen = stream.packets
        await eventually(lambda: stream.packets >= seen + 10, what="more media after the scrape")
        await a.send({"type": "leave"})
        rooms = http.app[ROOMS]
        await eventually(lambda: rooms.peer_count == 1, what="A gone")
    await eventually(lambda: rooms.peer_count == 0, what="B gone")
    after = await scrape(http)
    assert value(after, "kaamos_peers") == 0
    assert value(after, "kaamos_leaves_total", reason="left") == 1
    for name in MEDIA:
        assert value(after, name) >= value(during, name), name
    # Carried over from the peers that left, with what flowed after the first scrape.
    assert value(after, "kaamos_rtp_packets_forwarded_total") >= forwarded + 10


async def test_nacks_sent_upstream_are_counted(make_config: Any, make_client: Any) -> None:
    """A packet lost between publisher and SFU makes the SFU NACK it: nacks_sent moves."""
    http = await make_client(make_config())
    room_id = await create_room(http)
    async with clients(http, room_id, 2) as (a, b):
        await b.wait_decoded((a.peer_id, "camera"), frames=5)
        camera = next(t for t in a.pc.getTransceivers() if t.mid == a.mid_of((a.peer_id, "camera")))
        a.lose_outgoing_once.add(camera.sender._ssrc)
        await eventually(lambda: camera.sender._ssrc in a.lost_outgoing, what="a lost packet")
        metrics = http.app[METRICS]
        await eventually(
            lambda: metrics.collector.rooms.media_counts().nacks_sent >= 1,
            timeout=5,
            what="a NACK upstream",
        )
        assert value(await scrape(http), "kaamos_nacks_sent_total") >= 1


async def test_metrics_answer_while_redis_is_down(
    make_config: Any, make_client: Any, redis: Any
) -> None:
    """With Redis down the node's own figures still come, and kaamos_registry_up says 0."""
    http = await make_client(make_config(cluster={"redis_url": redis.url}))
    await create_room(http)
    samples = await scrape(http)
    assert value(samples, "kaamos_registry_up") == 1
    assert value(samples, "kaamos_rooms") == 1
    redis.stop()
    samples = await scrape(http)
    assert value(samples, "kaamos_registry_up") == 0
    assert ("kaamos_rooms", ()) not in samples
    assert value(samples, "kaamos_peers") == 0
