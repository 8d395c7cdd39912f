"""Routing incoming RTP to a receiver: by SSRC, a new SSRC by its mid, never by payload
type when the packet names a mid (kaamos_sfu/rtc_bridge/routing.py)."""

from __future__ import annotations

from aiortc.rtcdtlstransport import RtpRouter

from kaamos_sfu.forwarding import RtpHeader
from kaamos_sfu.rtc_bridge.routing import route_rtp

MID_ID = 1
CAMERA, SCREEN = object(), object()


def packet(ssrc: int, mid: str | None, payload_type: int = 96) -> RtpHeader:
    """An RTP packet with a one-byte sdes:mid extension when `mid` is given."""
    header = bytes([0x90 if mid is not None else 0x80, payload_type, 0, 1, 0, 0, 0, 1])
    header += ssrc.to_bytes(4, "big")
    if mid is not None:
        element = bytes([(MID_ID << 4) | (len(mid) - 1)]) + mid.encode()
        element += b"\0" * (-len(element) % 4)
        header += b"\xbe\xde" + (len(element) // 4).to_bytes(2, "big") + element
    return RtpHeader.parse(header + b"payload")


def router_with_camera() -> RtpRouter:
    router = RtpRouter()
    router.register_receiver(CAMERA, ssrcs=[111], payload_types=[96], mid="0")
    return router


def test_a_known_ssrc_goes_to_its_receiver() -> None:
    """The SSRC decides first, whatever the mid says."""
    assert route_rtp(router_with_camera(), packet(111, "2"), MID_ID) is CAMERA


def test_a_new_ssrc_goes_by_its_mid_and_is_learned() -> None:
    """A camera restarting on a new SSRC (same mid) stays the camera; the SSRC is learned."""
    router = router_with_camera()
    assert route_rtp(router, packet(222, "0"), MID_ID) is CAMERA
    assert router.ssrc_table[222] is CAMERA


def test_a_screen_share_before_its_m_line_is_registered_is_dropped_not_the_camera() -> None:
    """The screen's first packets (mid 2, same payload type as the camera) arrive before
    its receiver exists: they are dropped, not taken for a camera restart; once the screen
    receiver is registered they reach it."""
    router = router_with_camera()
    assert route_rtp(router, packet(333, "2"), MID_ID) is None
    assert 333 not in router.ssrc_table
    router.register_receiver(SCREEN, ssrcs=[], payload_types=[96], mid="2")
    assert route_rtp(router, packet(333, "2"), MID_ID) is SCREEN


def test_without_a_mid_only_a_payload_type_of_one_receiver_decides() -> None:
    """A client that sends no mid is routed by payload type only when one receiver has it."""
    router = router_with_camera()
    assert route_rtp(router, packet(444, None), MID_ID) is CAMERA
    router.register_receiver(SCREEN, ssrcs=[], payload_types=[96], mid="2")
    assert route_rtp(router, packet(555, None), MID_ID) is None
    assert route_rtp(router, packet(666, None, payload_type=97), 0) is None
