"""What /metrics reports (metrics_route.py serves it).

Nothing is recorded per packet: a custom collector reads the plain counters of the live
rooms and peers (stats.py) when Prometheus scrapes. The event-loop lag is measured by one
task that sleeps a fixed interval and records how late it woke up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from .. import __version__
from ..room import RoomManager

log = logging.getLogger(__name__)

LAG_INTERVAL_SECONDS = 0.5
LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
LAG_WARNING_SECONDS = 1.0

# (name, help, MediaCounts field) for each forwarding counter.
MEDIA_COUNTERS = (
    ("kaamos_rtp_packets_received", "RTP packets received from publishers.", "packets_received"),
    ("kaamos_rtp_packets_forwarded", "RTP packets forwarded to subscribers.", "packets_forwarded"),
    (
        "kaamos_rtp_payload_bytes_forwarded",
        "RTP payload bytes forwarded to subscribers.",
        "bytes_forwarded",
    ),
    (
        "kaamos_rtp_packets_dropped",
        "Packet copies not forwarded to a subscriber (waiting for a keyframe, late, no codec).",
        "packets_dropped",
    ),
    (
        "kaamos_nacks_received",
        "Packets subscribers asked to be resent (NACKed sequence numbers).",
        "nacks_received",
    ),
    ("kaamos_retransmissions", "NACKed packets resent from the cache.", "retransmissions"),
    (
        "kaamos_nacks_sent",
        "NACK packets sent to publishers for packets lost upstream.",
        "nacks_sent",
    ),
    (
        "kaamos_plis_received",
        "Keyframe requests (PLI/FIR) received from subscribers.",
        "keyframe_requests_received",
    ),
    ("kaamos_plis_sent", "Keyframe requests (PLI) sent to publishers.", "keyframe_requests_sent"),
    (
        "kaamos_rtp_packets_discarded",
        "RTP packets from publishers that fit no stream (a sequence jump, a stray RTX).",
        "packets_discarded",
    ),
    (
        "kaamos_srtp_send_failures",
        "Packets SRTP refused to protect for sending (dropped; never expected).",
        "srtp_send_failures",
    ),
)


class Metrics:
    """The per-app Prometheus registry (not the global one: tests run many apps)."""

    def __init__(self, rooms: RoomManager) -> None:
        self.registry = CollectorRegistry()
        self.collector = KaamosCollector(rooms)
        self.registry.register(self.collector)
        self.loop_lag = Histogram(
            "kaamos_event_loop_lag_seconds",
            f"How late the event loop ran a task scheduled every {LAG_INTERVAL_SECONDS} s.",
            buckets=LAG_BUCKETS,
            registry=self.registry,
        )
        ProcessCollector(registry=self.registry)

    async def watch_loop_lag(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(LAG_INTERVAL_SECONDS)
            lag = max(0.0, loop.time() - started - LAG_INTERVAL_SECONDS)
            self.loop_lag.observe(lag)
            if lag >= LAG_WARNING_SECONDS:  # media stalled for everyone on this node
                log.warning("event loop stalled", extra={"seconds": round(lag, 2)})


class KaamosCollector(Collector):
    def __init__(self, rooms: RoomManager) -> None:
        self.rooms = rooms
        # Set by the handler, which can await the registry; None while it is unreachable.
        self.registered_rooms: int | None = 0

    def collect(self) -> Iterator[Metric]:
        rooms = self.rooms
        info = GaugeMetricFamily("kaamos_build_info", "The running version.", labels=["version"])
        info.add_metric([__version__], 1)
        yield info
        yield GaugeMetricFamily(
            "kaamos_registry_up",
            "1 if the room registry (Redis, when configured) answered this scrape, else 0.",
            value=0 if self.registered_rooms is None else 1,
        )
        if self.registered_rooms is not None:  # no made-up value while Redis is down
            yield GaugeMetricFamily(
                "kaamos_rooms",
                "Rooms that exist and have not expired.",
                value=self.registered_rooms,
            )
        yield GaugeMetricFamily(
            "kaamos_active_rooms", "Rooms with peers on this node.", value=rooms.room_count
        )
        yield GaugeMetricFamily(
            "kaamos_peers", "Peers connected to this node.", value=rooms.peer_count
        )
        by_size = GaugeMetricFamily(
            "kaamos_rooms_by_peers", "Active rooms by their number of peers.", labels=["peers"]
        )
        sizes = [len(room) for room in rooms.rooms.values()]
        for size in range(1, rooms.config.rooms.max_peers + 1):
            by_size.add_metric([str(size)], sizes.count(size))
        yield by_size

        counts = rooms.counts
        yield CounterMetricFamily("kaamos_joins", "Peers admitted to a room.", value=counts.joins)
        yield _labelled("kaamos_leaves", "Peers that left, by reason.", "reason", counts.leaves)
        yield _labelled(
            "kaamos_join_refusals", "Joins refused, by error code.", "code", counts.join_refusals
        )
        yield _labelled(
            "kaamos_rate_limited",
            "Requests refused by a rate limit, by limit.",
            "limit",
            counts.rate_limited,
        )
        yield CounterMetricFamily(
            "kaamos_rooms_created", "Rooms created through the API.", value=counts.rooms_created
        )
        yield CounterMetricFamily(
            "kaamos_rooms_deleted", "Rooms deleted through the API.", value=counts.rooms_deleted
        )
        media = rooms.media_counts()
        for name, help_text, attribute in MEDIA_COUNTERS:
            yield CounterMetricFamily(name, help_text, value=getattr(media, attribute))
        yield _labelled(
            "kaamos_rtcp_dropped",
            "RTCP packets from clients not handled, by reason (malformed, over_limit).",
            "reason",
            {"malformed": media.rtcp_malformed, "over_limit": media.rtcp_over_limit},
        )


def _labelled(name: str, help_text: str, label: str, values: dict[str, int]) -> Metric:
    family = CounterMetricFamily(name, help_text, labels=[label])
    for key in sorted(values):
        family.add_metric([key], values[key])
    return family
