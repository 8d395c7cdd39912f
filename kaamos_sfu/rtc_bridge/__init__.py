"""Every use of aiortc/aioice internals lives in this package, and nowhere else.

aiortc gives us ICE, DTLS, SRTP and SDP, but its RTCRtpReceiver decodes everything (a
decoder thread per track) and its RTCRtpSender encodes (and polls every 20 ms while idle).
An SFU needs neither: we replace each transceiver's receiver and sender by subclasses that
tap RTP right after SRTP, before the jitter buffer, and write RTP straight to the DTLS
transport. The internals used are pinned by the exact aiortc version in pyproject.toml and
checked by `internals.check_internals()`, which tests/integration/test_rtc_bridge.py runs
so that an upgrade fails loudly instead of silently decoding again.
"""

from .codecs import (
    negotiated_codecs,
    publisher_codec_preferences,
    subscriber_codec_preferences,
)
from .connection import (
    RTCP_INTERVAL_MAX,
    add_forwarding_transceiver,
    check_answer_matches_offer,
    close_peer_connection,
    configure_ice,
    is_mdns_candidate,
    jittered_rtcp_interval,
    media_ports_exhausted,
    new_peer_connection,
    parse_remote_candidate,
    receive_media_directly,
    send_rtcp,
    set_stream,
    settle,
    strip_mdns_candidates,
    track_connect_tasks,
    transport_counts,
)
from .host_candidates import HostCandidatePlan
from .internals import AIORTC_VERSION, check_internals
from .receiver import Activity, ForwardingReceiver
from .sender import ForwardingSender, NegotiatedSend

__all__ = [
    "AIORTC_VERSION",
    "RTCP_INTERVAL_MAX",
    "Activity",
    "ForwardingReceiver",
    "ForwardingSender",
    "HostCandidatePlan",
    "NegotiatedSend",
    "add_forwarding_transceiver",
    "check_answer_matches_offer",
    "check_internals",
    "close_peer_connection",
    "configure_ice",
    "is_mdns_candidate",
    "jittered_rtcp_interval",
    "media_ports_exhausted",
    "negotiated_codecs",
    "new_peer_connection",
    "parse_remote_candidate",
    "publisher_codec_preferences",
    "receive_media_directly",
    "send_rtcp",
    "set_stream",
    "settle",
    "strip_mdns_candidates",
    "subscriber_codec_preferences",
    "track_connect_tasks",
    "transport_counts",
]
