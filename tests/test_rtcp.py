"""RTCP through the SFU: keyframe requests, retransmissions, sender reports, bandwidth."""

from __future__ import annotations

import asyncio
from typing import Any

from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_PLI,
    RtcpPacket,
    RtcpPsfbPacket,
    RtcpSrPacket,
    is_rtcp,
    pack_remb_fci,
    unpack_remb_fci,
)
from call_support import clients, create_room, eventually
from rtc_client import RtcClient

NTP_SCALE = 1 << 32


def record_publisher_rtcp(client: RtcClient, source: str) -> list[Any]:
    """Every RTCP packet the SFU sends to `client`'s sender of `source`."""
    mid = client.mid_of((client.peer_id, source))
    transceiver = next(t for t in client.pc.getTransceivers() if t.mid == mid)
    sender = transceiver.sender
    handle = sender._handle_rtcp_packet
    seen: list[Any] = []

    async def on_rtcp(packet: Any) -> None:
        seen.append(packet)
        await handle(packet)

    sender._handle_rtcp_packet = on_rtcp
    return seen


def receiver_of(client: RtcClient, key: tuple[str, str]) -> Any:
    mid = client.mid_of(key)
    return next(t for t in client.pc.getTransceivers() if t.mid == mid).receiver


async def test_pli_from_subscriber_reaches_publisher(make_config, make_client):
    """A subscriber's PLI is relayed upstream as a PLI for the publisher's own SSRC."""
    http = await make_client(make_config())
    room_id = await create_room(http)
    async with clients(http, room_id, 2) as (a, b):
        await b.wait_decoded((a.peer_id, "camera"), frames=5)
        seen = record_publisher_rtcp(a, "camera")
        await asyncio.sleep(0.6)  # past the throttle of the join's own keyframe request
        forwarded = b.received_from(a.peer_id, "camera")
        await receiver_of(b, (a.peer_id, "camera"))._send_rtcp_pli(forwarded.ssrc)
        publisher_ssrc = next(
            t.sender._ssrc for t in a.pc.getTransceivers()
            if t.mid == a.mid_of((a.peer_id, "camera"))
        )
        await eventually(
            lambda: any(
                isinstance(p, RtcpPsfbPacket) and p.fmt == RTCP_PSFB_PLI
                and p.media_ssrc == publisher_ssrc for p in seen
            ),
            timeout=3,
            what="PLI at the publisher",
        )


async def test_nacked_packet_is_retransmitted(make_config, make_client):
    """A video packet lost on the way to a subscriber is NACKed and resent, byte for byte."""
    http = await make_client(make_config())
    room_id = await create_room(http)
    async with clients(http, room_id, 2) as (a, b):
        await b.wait_decoded((a.peer_id, "camera"), frames=5)
        stream = b.received_from(a.peer_id, "camera")
        b.drop_once.add(stream.ssrc)
        await eventually(lambda: stream.ssrc in b.dropped, what="a lost packet")
        sequence = b.dropped[stream.ssrc]
        await eventually(lambda: sequence in stream.payloads, timeout=3,
                         what=f"retransmission of {sequence}")
        publisher = next(t.sender for t in a.pc.getTransceivers()
                         if t.mid == a.mid_of((a.peer_id, "camera")))
        sent = {p.payload for p in publisher._RTCRtpSender__rtp_history.values()}
        assert stream.payloads[sequence] in sent


async def test_sender_reports_map_to_publisher_clock(make_config, make_client):
    """Sender reports for a forwarded stream put its RTP timestamps on the publisher's
    NTP clock: the mapping the publisher reported, shifted by the SFU's timestamp offset."""
    http = await make_client(make_config())
    room_id = await create_room(http)
    async with clients(http, room_id, 2) as (a, b):
        await b.wait_decoded((a.peer_id, "camera"), frames=1)
        seen_upstream: list[RtcpSrPacket] = []
        publisher_mid = a.mid_of((a.peer_id, "camera"))
        transport = a.pc.getTransceivers()[0].sender.transport
        send = transport._send_rtp

        async def capture(data: bytes) -> None:
            if is_rtcp(data):
                seen_upstream.extend(p for p in RtcpPacket.parse(data) if isinstance(p, RtcpSrPacket))
            await send(data)

        transport._send_rtp = capture
        camera_ssrc = next(
            t.sender._ssrc for t in a.pc.getTransceivers() if t.mid == publisher_mid
        )
        forwarded = b.received_from(a.peer_id, "camera")
        await eventually(lambda: len(forwarded.sender_reports) >= 2, timeout=8, what="SRs at B")
        upstream = [p for p in seen_upstream if p.ssrc == camera_ssrc]
        assert upstream, "the publisher sent sender reports"
        mid = b.mid_of((a.peer_id, "camera"))
        rtp_offset = _timestamp_offset(a, b, mid)
        assert rtp_offset is not None, "no payload seen on both sides"
        reference = upstream[-1].sender_info
        for _, ntp, rtp in forwarded.sender_reports[-2:]:
            elapsed = (ntp - reference.ntp_timestamp) / NTP_SCALE
            expected = (reference.rtp_timestamp + rtp_offset + round(elapsed * 90000)) & 0xFFFFFFFF
            drift = ((rtp - expected + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)
            assert abs(drift) < 90000 * 0.02, f"forwarded SR off the publisher clock by {drift}"


def _timestamp_offset(a: RtcClient, b: RtcClient, mid: str) -> int | None:
    """The SFU's RTP timestamp shift, from one payload seen on both sides (payloads are
    forwarded unchanged, so they pair the publisher's packets with the forwarded ones)."""
    publisher_sender = next(
        t.sender for t in a.pc.getTransceivers() if t.mid == a.mid_of((a.peer_id, "camera"))
    )
    history = publisher_sender._RTCRtpSender__rtp_history
    sent = {p.payload: p.timestamp for p in history.values()}
    received = b.received[mid]
    for sequence, payload in received.payloads.items():
        if payload in sent:
            return (received.timestamps[sequence] - sent[payload]) & 0xFFFFFFFF
    return None


async def test_publisher_gets_weakest_subscribers_bandwidth(make_config, make_client):
    """The REMB sent to a publisher is the minimum of its subscribers' estimates."""
    http = await make_client(make_config())
    room_id = await create_room(http)
    async with clients(http, room_id, 3) as (a, b, c):
        await b.wait_decoded((a.peer_id, "camera"), frames=5)
        await c.wait_decoded((a.peer_id, "camera"), frames=5)
        seen = record_publisher_rtcp(a, "camera")
        weak = 123_000
        stream = b.received_from(a.peer_id, "camera")
        receiver = receiver_of(b, (a.peer_id, "camera"))
        rtcp_ssrc = receiver._RTCRtpReceiver__rtcp_ssrc

        def remb_at_publisher() -> list[int]:
            return [
                unpack_remb_fci(p.fci)[0]
                for p in seen
                if isinstance(p, RtcpPsfbPacket) and p.fmt == RTCP_PSFB_APP
            ]

        async def send_weak_estimate() -> None:
            packet = RtcpPsfbPacket(
                fmt=RTCP_PSFB_APP, ssrc=rtcp_ssrc, media_ssrc=0,
                fci=pack_remb_fci(weak, [stream.ssrc]),
            )
            await receiver._send_rtcp(packet)

        for _ in range(30):
            await send_weak_estimate()
            await asyncio.sleep(0.1)
            if weak in remb_at_publisher():
                break
        assert weak in remb_at_publisher()
