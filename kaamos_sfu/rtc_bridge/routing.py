"""Which receiver an incoming RTP packet is for, from the tables aiortc's RtpRouter keeps.

aiortc's `route_rtp` takes an unknown SSRC to the one receiver of its payload type. When a
screen share starts, its first packets can arrive before the screen's m-line is registered;
the camera's receiver is then the only one with that payload type, takes the screen's SSRC
as a restart of the camera, and keeps it. Here an unknown SSRC is routed by the packet's
sdes:mid header extension, never by payload type when the packet names a mid; the payload
type decides only for a packet without a mid, and only if one receiver has that type.
"""

from __future__ import annotations

from typing import Any

from aiortc.rtcdtlstransport import RtpRouter

from ..forwarding import RtpHeader


def route_rtp(router: RtpRouter, packet: RtpHeader, mid_extension_id: int) -> Any:
    """The receiver for `packet`, learning its SSRC when it is new; None to drop it."""
    receiver = router.ssrc_table.get(packet.ssrc)
    if receiver is not None:
        return receiver
    mid = packet.extension(mid_extension_id) if mid_extension_id else None
    if mid is not None:
        receiver = router.mid_table.get(mid.decode("ascii", "replace"))
    else:
        by_type = router.payload_type_table.get(packet.payload_type, ())
        receiver = next(iter(by_type)) if len(by_type) == 1 else None
    if receiver is not None:
        router.ssrc_table[packet.ssrc] = receiver
    return receiver
