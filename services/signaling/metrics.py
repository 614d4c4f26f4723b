"""The signaling service's Prometheus metrics: one place for every name, label and bucket.

Label values come only from bounded sets: message types from the protocol's known set (anything
else is ``unknown``), auth-failure and protocol-error reasons from fixed tuples, nodes from the
configured node list, policies from ``config.POLICIES``. Nothing per user, room or connection.

``SignalingMetrics(registry=..., enabled=False)`` keeps the same interface with no-op metrics;
the overhead benchmark compares both.

No ``_created`` series: no panel or rule reads them, and prometheus_client would add one to
every counter and histogram child (``disable_created_metrics`` is process-wide).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from signaling.limits import REFUSALS

ICE_NEGOTIATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
HTTP_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

ICE_STATUSES = ("connected", "failed")
HTTP_ENDPOINTS = ("/metrics", "/healthz", "/readyz", "/admin/placement", "/admin/nodes", "other")
JANUS_REQUESTS = ("create", "attach", "detach", "destroy", "keepalive", "ping", "trickle",
                  "room_create", "room_destroy", "join", "publish", "subscribe", "start", "leave", "other")


class _Noop:
    """Stands in for any metric or child when metrics are off."""

    def labels(self, *args: Any, **kwargs: Any) -> _Noop:
        return self

    def inc(self, amount: float = 1) -> None:
        pass

    def dec(self, amount: float = 1) -> None:
        pass

    def set(self, value: float) -> None:
        pass

    def observe(self, value: float) -> None:
        pass


class SignalingMetrics:
    """All metrics of one signaling process, registered in ``registry``."""

    def __init__(self, *, registry: CollectorRegistry, region: str, enabled: bool = True) -> None:
        self.registry = registry
        self.region = region
        self.enabled = enabled
        if not enabled:
            noop = _Noop()
            self.count_message = lambda msg_type, direction: None  # type: ignore[method-assign]
            for name in ("websockets_active", "rooms_active", "participants_active",
                         "auth_failures", "ice_negotiation", "join_duration", "http_duration",
                         "event_loop_lag", "placements", "janus_request_duration", "protocol_errors",
                         "janus_node_up"):
                setattr(self, name, noop)
            return
        disable_created_metrics()
        r = registry
        self.websockets_active = Gauge("signaling_websockets_active", "Open client WebSocket connections.",
                                       ["region"], registry=r).labels(region)
        self.rooms_active = Gauge("signaling_rooms_active", "Rooms with at least one participant.",
                                  ["region"], registry=r).labels(region)
        self.participants_active = Gauge("signaling_participants_active", "Participants joined to a room.",
                                         ["region"], registry=r).labels(region)
        self.messages = MessageCounts(registry=r)
        self.auth_failures = Counter("signaling_auth_failures_total", "Refused joins by token failure reason.",
                                     ["reason"], registry=r)
        self.ice_negotiation = Histogram(
            "signaling_ice_negotiation_seconds",
            "Time from an SDP offer to the client's ICE state report, by reported status.",
            ["status"], buckets=ICE_NEGOTIATION_BUCKETS, registry=r)
        self.join_duration = Histogram("signaling_join_duration_seconds",
                                       "Time from a join request to the joined reply (successful joins).",
                                       buckets=LATENCY_BUCKETS, registry=r)
        self.http_duration = Histogram("http_request_duration_seconds",
                                       "HTTP request handling time by method and endpoint.",
                                       ["method", "endpoint"], buckets=HTTP_BUCKETS, registry=r)
        self.event_loop_lag = Gauge("signaling_event_loop_lag_seconds",
                                    "How late the last event-loop probe woke up.", registry=r)
        self.placements = Counter("signaling_room_placements_total", "Rooms placed, by SFU node and policy.",
                                  ["node", "policy"], registry=r)
        self.janus_request_duration = Histogram(
            "signaling_janus_request_duration_seconds", "Janus API round trips by node and request.",
            ["node", "request"], buckets=LATENCY_BUCKETS, registry=r)
        self.protocol_errors = Counter("signaling_protocol_errors_total",
                                       "Client messages or connections refused, by reason.",
                                       ["reason"], registry=r)
        for reason in REFUSALS:  # at 0 from the start, so the first refusals show in rate()
            self.protocol_errors.labels(reason)
        self.auth_failures.labels("throttled")
        self.janus_node_up = Gauge("signaling_janus_node_up",
                                   "1 when the node's Janus answers health pings and may take rooms.",
                                   ["node"], registry=r)

    def count_message(self, msg_type: str, direction: str) -> None:
        """Count one message; ``msg_type`` must already be a known type or ``unknown``."""
        self.messages.count(msg_type, direction)


class MessageCounts(Collector):
    """``signaling_messages_total``, kept as plain integers and turned into a family at scrape time.

    Every client message passes here, so the hot path is one dict update (about 60 ns) instead of a
    labelled ``Counter.inc`` (about 400 ns, a label lookup and a lock). Output::

        # HELP signaling_messages_total Signaling messages by protocol type (unknown for ...) and direction.
        # TYPE signaling_messages_total counter
        signaling_messages_total{direction="in",msg_type="join"} 500.0
    """

    def __init__(self, *, registry: CollectorRegistry | None) -> None:
        self.counts: dict[tuple[str, str], int] = {}
        if registry is not None:
            registry.register(self)

    def count(self, msg_type: str, direction: str) -> None:
        key = (msg_type, direction)
        self.counts[key] = self.counts.get(key, 0) + 1

    def describe(self) -> list[CounterMetricFamily]:
        return [self._family()]

    def collect(self) -> list[CounterMetricFamily]:
        family = self._family()
        for (msg_type, direction), value in sorted(self.counts.items()):
            family.add_metric([msg_type, direction], value)
        return [family]

    @staticmethod
    def _family() -> CounterMetricFamily:
        return CounterMetricFamily("signaling_messages_total",
                                   "Signaling messages by protocol type (unknown for anything else) and direction.",
                                   labels=["msg_type", "direction"])
