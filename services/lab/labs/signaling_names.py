"""The signaling service's metric names, read from its own metrics module (no second copy here)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from signaling.metrics import SignalingMetrics

_METRICS = SignalingMetrics(registry=CollectorRegistry(), region="lab")
ROOMS_ACTIVE = _METRICS.rooms_active._name  # signaling_rooms_active (a labelled child keeps the family name)
PARTICIPANTS_ACTIVE = _METRICS.participants_active._name
ICE_NEGOTIATION = _METRICS.ice_negotiation._name  # signaling_ice_negotiation_seconds
JOIN_DURATION = _METRICS.join_duration._name
