"""The forwarding core: pure, synchronous per-packet code (no aiohttp, no aiortc, no I/O).

`UpTrack` is one published source (a peer's camera, microphone or screen) as it arrives;
`DownTrack` is that source as one subscriber receives it. The bridge (`rtc_bridge/`)
feeds RTP parsed into an `RtpHeader` into an `UpTrack` and hands the bytes a `DownTrack` writes to aiortc's
DTLS/SRTP transport.
"""

from .codec import Codec
from .downtrack import DownTrack, ExtensionIds, RtpSink
from .rtp_header import RtpHeader
from .uptrack import UpTrack

__all__ = ["Codec", "DownTrack", "ExtensionIds", "RtpHeader", "RtpSink", "UpTrack"]
