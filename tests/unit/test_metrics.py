from prometheus_client import CollectorRegistry, generate_latest

from signaling.metrics import SignalingMetrics


def test_disabled_metrics_accept_the_same_calls_and_register_nothing():
    registry = CollectorRegistry()
    metrics = SignalingMetrics(registry=registry, region="eu", enabled=False)
    metrics.count_message("join", "in")
    metrics.ice_negotiation.labels("connected").observe(0.2)
    metrics.websockets_active.dec()
    assert generate_latest(registry) == b""


def test_ice_negotiation_buckets_cover_50ms_to_10s():
    registry = CollectorRegistry()
    metrics = SignalingMetrics(registry=registry, region="eu")
    metrics.ice_negotiation.labels("connected").observe(0.3)
    assert registry.get_sample_value("signaling_ice_negotiation_seconds_bucket",
                                     {"status": "connected", "le": "0.25"}) == 0
    assert registry.get_sample_value("signaling_ice_negotiation_seconds_bucket",
                                     {"status": "connected", "le": "0.5"}) == 1
    assert registry.get_sample_value("signaling_ice_negotiation_seconds_bucket",
                                     {"status": "connected", "le": "0.05"}) == 0
    assert registry.get_sample_value("signaling_ice_negotiation_seconds_bucket",
                                     {"status": "connected", "le": "10.0"}) == 1


def test_gauges_carry_the_region_label():
    registry = CollectorRegistry()
    SignalingMetrics(registry=registry, region="eu").rooms_active.set(3)
    assert registry.get_sample_value("signaling_rooms_active", {"region": "eu"}) == 3
