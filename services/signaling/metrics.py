"""The signaling service's Prometheus metrics: one place for every name, label and bucket.

Label values come only from bounded sets: message types from the protocol's known set (anything
else is ``unknown``), auth-failure and protocol-error reasons from fixed tuples, nodes from the
configured node list, policies from ``config.POLICIES``. Nothing per user, room or connection.

``SignalingMetrics(registry=..., enabled=False)`` keeps the same interface with no-op metrics;
the overhead benchmark compares both.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

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
            for name in ("websockets_active", "rooms_active", "participants_active", "messages",
                         "auth_failures", "ice_negotiation", "join_duration", "http_duration",
                         "event_loop_lag", "placements", "janus_request_duration", "protocol_errors",
                         "janus_node_up"):
                setattr(self, name, noop)
            return
        r = registry
        self.websockets_active = Gauge("signaling_websockets_active", "Open client WebSocket connections.",
                                       ["region"], registry=r).labels(region)
        self.rooms_active = Gauge("signaling_rooms_active", "Rooms with at least one participant.",
                                  ["region"], registry=r).labels(region)
        self.participants_active = Gauge("signaling_participants_active", "Participants joined to a room.",
                                         ["region"], registry=r).labels(region)
        self.messages = Counter("signaling_messages_total",
                                "Signaling messages by protocol type (unknown for anything else) and direction.",
                                ["msg_type", "direction"], registry=r)
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
        self.janus_node_up = Gauge("signaling_janus_node_up",
                                   "1 when the node's Janus answers health pings and may take rooms.",
                                   ["node"], registry=r)
