"""Prometheus collectors of the exporter, one per area, reading the ``Exporter`` state.

Names, types, labels and buckets live here and in ``media.py``; ``docs/metrics.md`` lists them.
No label identifies a node, room, session or handle: the scrape target is the node.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from janus_exporter.admin import ERROR_REASONS
from janus_exporter.events import REJECT_REASONS, SLOW_LINK_DIRECTIONS
from janus_exporter.exporter import Exporter
from janus_exporter.media import COUNTER_LABELS, MEDIA_KINDS, RTT_BUCKETS_SECONDS

ROOM_SIZE_BUCKETS = (1, 2, 5, 10, 50, 100, 500, 1000)

_COUNTER_HELP = {
    "sfu_nacks_total": "NACKed RTP sequence numbers; direction received = peers asked Janus, sent = Janus asked",
    "sfu_retransmissions_total": "Retransmitted RTP packets Janus received from publishers",
    "sfu_packets_total": "RTP packets received by or sent from Janus",
    "sfu_bytes_total": "RTP bytes received by or sent from Janus",
    "sfu_packets_lost_total": "Lost RTP packets; origin local = on the way into Janus, remote = reported by the peer",
}
_FIXED_LABEL_VALUES = {"direction": ("received", "sent"), "origin": ("local", "remote")}


def _bucket_label(bound: float) -> str:
    return f"{bound:g}" if bound != float("inf") else "+Inf"


class JanusCollector:
    """Health and inventory of the node from the last Admin sweep.

        janus_up 1.0
        janus_exporter_scrape_duration_seconds 0.012
        janus_exporter_scrape_errors_total{reason="timeout"} 0.0
        sfu_admin_api_rtt_seconds 0.0004
        sfu_sessions_active 502.0
        sfu_active_handles 510.0
        sfu_peerconnections_active 8.0
        sfu_rooms_active 3.0
        sfu_room_participants_max 500.0
        sfu_room_size_participants_bucket{le="1"} 0.0
        ...
        sfu_room_size_participants_bucket{le="+Inf"} 3.0

    While Janus is down or answers garbage only ``janus_up 0``, the scrape duration and the error
    counters are exposed: no inventory gauge from a partial sweep.
    """

    def __init__(self, exporter: Exporter) -> None:
        self.exporter = exporter

    def collect(self) -> Iterator[Metric]:
        e = self.exporter
        yield GaugeMetricFamily("janus_up", "1 if the last Admin API sweep succeeded within its deadline",
                                value=int(e.up))
        yield GaugeMetricFamily("janus_exporter_scrape_duration_seconds", "Duration of the last scrape",
                                value=e.scrape_duration_seconds)
        errors = CounterMetricFamily("janus_exporter_scrape_errors", "Failed Admin API sweeps by reason",
                                     labels=["reason"])
        for reason in ERROR_REASONS:
            errors.add_metric([reason], e.errors[reason])
        yield errors
        inventory = e.inventory
        if inventory is None:
            return
        yield GaugeMetricFamily("sfu_admin_api_rtt_seconds", "Round trip of an Admin API ping (event-loop-lag proxy)",
                                value=inventory.admin_rtt_seconds)
        yield GaugeMetricFamily("sfu_sessions_active", "Janus sessions", value=inventory.sessions)
        yield GaugeMetricFamily("sfu_active_handles", "Janus plugin handles", value=inventory.handles)
        if e.peer_connections_active is not None:
            yield GaugeMetricFamily("sfu_peerconnections_active", "Handles with a PeerConnection up",
                                    value=e.peer_connections_active)
        yield GaugeMetricFamily("sfu_rooms_active", "VideoRoom rooms", value=inventory.rooms)
        yield GaugeMetricFamily("sfu_room_participants_max", "Participants in the largest room",
                                value=inventory.largest_room)
        buckets = [(_bucket_label(bound), sum(1 for size in inventory.room_sizes if size <= bound))
                   for bound in (*ROOM_SIZE_BUCKETS, float("inf"))]
        yield GaugeHistogramMetricFamily("sfu_room_size_participants", "Rooms by number of participants",
                                         buckets=buckets, gsum_value=sum(inventory.room_sizes))


class MediaCollector:
    """Media counters summed over every handle the node has had, and RTT observations.

        sfu_nacks_total{direction="received",media="video"} 148.0
        sfu_retransmissions_total{media="video"} 12.0
        sfu_packets_total{direction="sent",media="audio"} 1718.0
        sfu_bytes_total{direction="sent",media="video"} 227824.0
        sfu_packets_lost_total{origin="remote",media="video"} 44.0
        sfu_rtt_seconds_bucket{le="0.005",media="video"} 3.0
        sfu_slow_link_events_total{direction="uplink",media="audio"} 1.0
        janus_exporter_media_handles_tracked 4.0
        janus_exporter_media_baselines_total 2.0
        janus_exporter_media_resets_total 0.0
    """

    def __init__(self, exporter: Exporter) -> None:
        self.exporter = exporter

    def collect(self) -> Iterator[Metric]:
        ledger = self.exporter.ledger
        for name, labels in COUNTER_LABELS.items():
            family = CounterMetricFamily(name.removesuffix("_total"), _COUNTER_HELP[name], labels=list(labels))
            for values in _label_values(labels):
                family.add_metric(list(values), ledger.totals.get((name, values), 0.0))
            yield family
        rtt = HistogramMetricFamily("sfu_rtt_seconds", "RTCP round-trip time per stream and stats period",
                                    labels=["media"])
        for media in MEDIA_KINDS:
            histogram = ledger.rtt[media]
            buckets = [(_bucket_label(b), c) for b, c in zip(RTT_BUCKETS_SECONDS, histogram.counts, strict=True)]
            rtt.add_metric([media], [*buckets, ("+Inf", histogram.count)], sum_value=histogram.total)
        yield rtt
        slow = CounterMetricFamily("sfu_slow_link_events", "Janus slow-link notifications",
                                   labels=["direction", "media"])
        for direction in SLOW_LINK_DIRECTIONS:
            for media in MEDIA_KINDS:
                slow.add_metric([direction, media], ledger.slow_links.get((direction, media), 0))
        yield slow
        yield GaugeMetricFamily("janus_exporter_media_handles_tracked",
                                "Handles whose last counter values the exporter keeps", value=ledger.tracked_handles)
        yield CounterMetricFamily("janus_exporter_media_baselines",
                                  "Streams whose first sample was their baseline (not known to have started at zero)",
                                  value=ledger.baselines)
        yield CounterMetricFamily("janus_exporter_media_resets",
                                  "Stream samples that restarted counting (a counter other than loss went back)",
                                  value=ledger.resets)


def _label_values(labels: tuple[str, ...]) -> list[tuple[str, ...]]:
    combos: list[tuple[str, ...]] = [()]
    for label in labels:
        choices = MEDIA_KINDS if label == "media" else _FIXED_LABEL_VALUES[label]
        combos = [(*combo, choice) for combo in combos for choice in choices]
    return combos


class EventsCollector:
    """What the event receiver got.

        janus_exporter_events_total{type="media"} 8387.0
        janus_exporter_events_rejected_total{reason="source"} 0.0
    """

    def __init__(self, exporter: Exporter) -> None:
        self.exporter = exporter

    def collect(self) -> Iterator[Metric]:
        sink = self.exporter.events
        received = CounterMetricFamily("janus_exporter_events", "Events received from Janus by type",
                                       labels=["type"])
        for kind, count in sink.received.items():
            received.add_metric([kind], count)
        yield received
        rejected = CounterMetricFamily("janus_exporter_events_rejected", "Event posts refused or not understood",
                                       labels=["reason"])
        for reason in REJECT_REASONS:
            rejected.add_metric([reason], sink.rejected[reason])
        yield rejected


class ProcessCollector:
    """The Janus process's resources, by PID.

        sfu_process_cpu_seconds_total 73.2
        sfu_cpu_budget_cores 1.0
        sfu_cpu_usage_percent 41.5
        sfu_process_resident_memory_bytes 5.1e+07
        sfu_process_threads 21.0
    """

    def __init__(self, exporter: Exporter) -> None:
        self.exporter = exporter

    def collect(self) -> Iterator[Metric]:
        e = self.exporter
        yield GaugeMetricFamily("sfu_cpu_budget_cores", "CPU budget of the node in cores",
                                value=e.config.cpu_budget_cores)
        sample = e.process_sample
        if sample is None:
            return
        yield CounterMetricFamily("sfu_process_cpu_seconds", "CPU time of the Janus process (user + system)",
                                  value=sample.cpu_seconds)
        if e.cpu_usage_percent is not None:
            yield GaugeMetricFamily("sfu_cpu_usage_percent", "Janus CPU since the previous scrape, % of the budget",
                                    value=e.cpu_usage_percent)
        yield GaugeMetricFamily("sfu_process_resident_memory_bytes", "Resident memory of the Janus process",
                                value=sample.resident_bytes)
        yield GaugeMetricFamily("sfu_process_threads", "Threads of the Janus process", value=sample.threads)


class LinkCollector:
    """The node's shaped media link (its htb class and bounded queue, ``tc -s qdisc``).

        sfu_link_up 1.0
        sfu_link_capacity_bytes_per_second 750000.0
        sfu_link_queue_limit_bytes 150000.0
        sfu_link_sent_bytes_total 1.0356e+08
        sfu_link_sent_packets_total 98211.0
        sfu_link_dropped_packets_total 4133.0
        sfu_link_backlog_bytes 58320.0
        sfu_link_backlog_packets 48.0

    ``sfu_link_up 0`` alone when ``tc`` cannot be read or the node's link is not shaped; nothing at
    all with ``JANUS_EXPORTER_LINK_QDISC=off``.
    """

    def __init__(self, exporter: Exporter) -> None:
        self.exporter = exporter

    def collect(self) -> Iterator[Metric]:
        if self.exporter.config.link_qdisc is None:
            return
        link = self.exporter.link
        yield GaugeMetricFamily("sfu_link_up", "1 if the node's shaped link was read from tc -s qdisc",
                                value=int(link is not None))
        if link is None:
            return
        if link.rate_bits_per_second is not None:
            yield GaugeMetricFamily("sfu_link_capacity_bytes_per_second", "Rate of the node's link (its htb class)",
                                    value=link.rate_bits_per_second / 8)
        if link.limit_bytes is not None:
            yield GaugeMetricFamily("sfu_link_queue_limit_bytes", "Bound of the link's queue (bfifo limit)",
                                    value=link.limit_bytes)
        yield CounterMetricFamily("sfu_link_sent_bytes", "Bytes of Janus RTP/RTCP the link sent",
                                  value=link.sent_bytes)
        yield CounterMetricFamily("sfu_link_sent_packets", "Packets of Janus RTP/RTCP the link sent",
                                  value=link.sent_packets)
        yield CounterMetricFamily("sfu_link_dropped_packets", "Packets dropped by the link: its queue was full",
                                  value=link.dropped_packets)
        yield GaugeMetricFamily("sfu_link_backlog_bytes", "Bytes waiting in the link's queue", value=link.backlog_bytes)
        yield GaugeMetricFamily("sfu_link_backlog_packets", "Packets waiting in the link's queue",
                                value=link.backlog_packets)


def build_registry(exporter: Exporter, registry: CollectorRegistry | None = None) -> CollectorRegistry:
    """A registry holding the exporter's collectors (and nothing else: no client_python defaults)."""
    registry = registry or CollectorRegistry(auto_describe=False)
    collectors: tuple[Collector, ...] = (JanusCollector(exporter), MediaCollector(exporter),
                                         EventsCollector(exporter), ProcessCollector(exporter),
                                         LinkCollector(exporter))
    for collector in collectors:
        registry.register(collector)
    return registry
