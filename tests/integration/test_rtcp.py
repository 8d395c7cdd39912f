"""RTCP through the SFU: keyframe requests, retransmissions, sender reports, bandwidth."""

from __future__ import annotations

import asyncio
from typing import Any

from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_PLI,
    RtcpPacket,
    RtcpPsfbPacket,
    RtcpRtpfbPacket,
    RtcpSrPacket,
    is_rtcp,
    pack_remb_fci,
    unpack_remb_fci,
)
from call_support import clients, create_room
from rtc_client import RtcClient
from timing import eventually

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
        assert stream.payloads[sequence] in a.sent_on("camera")


async def test_sfu_nacks_what_it_missed_from_the_publisher(make_config, make_client):
    """A video packet lost between publisher and SFU is NACKed by the SFU, resent by the
    publisher (as RTX), and reaches the subscriber with its payload unchanged."""
    http = await make_client(make_config())
    room_id = await create_room(http)
    async with clients(http, room_id, 2) as (a, b):
        await b.wait_decoded((a.peer_id, "camera"), frames=5)
        seen = record_publisher_rtcp(a, "camera")
        camera = next(t for t in a.pc.getTransceivers()
                      if t.mid == a.mid_of((a.peer_id, "camera")))
        a.lose_outgoing_once.add(camera.sender._ssrc)
        await eventually(lambda: camera.sender._ssrc in a.lost_outgoing, what="a lost packet")
        sequence, payload = a.lost_outgoing[camera.sender._ssrc]
        await eventually(
            lambda: any(isinstance(p, RtcpRtpfbPacket) and sequence in p.lost for p in seen),
            timeout=3,
            what=f"a NACK for {sequence} at the publisher",
        )
        stream = b.received_from(a.peer_id, "camera")
        await eventually(lambda: payload in stream.payloads.values(), timeout=3,
                         what="the recovered packet at the subscriber")


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
    """The REMB sent to a publisher is the minimum of its subscribers' estimates (each the
    subscriber's estimate shared among the streams it lists), not the latest one."""
    http = await make_client(make_config())
    room_id = await create_room(http)
    async with clients(http, room_id, 3) as (a, b, c):
        await b.wait_decoded((a.peer_id, "camera"), frames=5)
        await c.wait_decoded((a.peer_id, "camera"), frames=5)
        subscribers = []
        for client, estimate in ((b, 246_000), (c, 456_000)):
            receiver = receiver_of(client, (a.peer_id, "camera"))
            # Only our estimates: silence aiortc's own bandwidth estimator.
            receiver._RTCRtpReceiver__remote_bitrate_estimator = None
            stream = client.received_from(a.peer_id, "camera")
            # b lists a second SSRC: its 246 kbps are shared, 123 kbps for this stream.
            ssrcs = [stream.ssrc, 0x0BADF00D] if client is b else [stream.ssrc]
            subscribers.append((receiver, estimate, ssrcs))
        seen = record_publisher_rtcp(a, "camera")

        async def send_estimates() -> None:
            for receiver, estimate, ssrcs in subscribers:
                await receiver._send_rtcp(
                    RtcpPsfbPacket(
                        fmt=RTCP_PSFB_APP,
                        ssrc=receiver._RTCRtpReceiver__rtcp_ssrc,
                        media_ssrc=0,
                        fci=pack_remb_fci(estimate, ssrcs),
                    )
                )

        await send_estimates()
        await asyncio.sleep(0.2)
        start = len(seen)
        for _ in range(25):  # c's larger estimate always arrives last
            await send_estimates()
            await asyncio.sleep(0.1)
        later = [
            unpack_remb_fci(p.fci)[0]
            for p in seen[start:]
            if isinstance(p, RtcpPsfbPacket) and p.fmt == RTCP_PSFB_APP
        ]
        assert later, "the publisher got REMB"
        assert set(later) == {123_000}, later
