"""signaling.limits: source addresses, connection caps, the failed-join throttle (on a clock the test moves)."""

from __future__ import annotations

import resource

import pytest
from prometheus_client import CollectorRegistry

from signaling.config import load
from signaling.limits import ConnectionCaps, JoinThrottle, fit_descriptor_limit, source_key
from signaling.metrics import SignalingMetrics

GOOD = {"SIGNALING_TOKEN_KEY": "k" * 32, "SIGNALING_ADMIN_TOKEN": "a" * 16, "SIGNALING_SFU_NODES": "sfu-node-01=ws://10.0.0.1:8188"}


@pytest.mark.parametrize("host, source", [
    ("198.51.100.7", "198.51.100.7"),
    ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
    ("2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"),
    ("::ffff:198.51.100.7", "198.51.100.7"),
    ("fe80::1%eth0", "fe80::/64"),
    ("/run/signaling.sock", "/run/signaling.sock"),
])
def test_a_source_is_an_ipv4_address_or_an_ipv6_slash_64(host, source):
    assert source_key(host) == source


def test_caps_refuse_per_source_first_then_in_total_and_forget_a_source_once_it_has_nothing_open():
    caps = ConnectionCaps(total=3, per_source=2)
    assert [caps.admit("a"), caps.admit("a"), caps.admit("a")] == [None, None, "address_full"]
    assert [caps.admit("b"), caps.admit("c")] == [None, "server_full"]
    caps.release("a")
    assert caps.admit("c") is None
    for source in ("a", "b", "c"):
        caps.release(source)
    assert caps.open == 0 and caps.by_source == {}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_refusal_that_reaches_the_limit_starts_the_hold_and_refusals_during_it_do_not_extend_it():
    clock = Clock()
    throttle = JoinThrottle(limit=3, window=60, hold=30, clock=clock)
    assert [throttle.refused("a"), throttle.refused("a")] == [False, False]
    assert throttle.retry_after("a") == 0
    assert throttle.refused("a") is True
    assert throttle.retry_after("a") == 30 and throttle.retry_after("b") == 0
    clock.now += 29
    assert throttle.retry_after("a") == pytest.approx(1)
    clock.now += 1
    assert throttle.retry_after("a") == 0
    assert throttle.refused("a") is False, "the count starts again after a hold"


def test_refusals_spread_wider_than_the_window_never_throttle():
    clock = Clock()
    throttle = JoinThrottle(limit=3, window=60, hold=30, clock=clock)
    for _ in range(10):
        assert throttle.refused("a") is False
        assert throttle.refused("a") is False
        clock.now += 61
    assert throttle.retry_after("a") == 0


def test_a_full_table_forgets_sources_whose_window_and_hold_are_over_but_keeps_a_held_one():
    clock = Clock()
    throttle = JoinThrottle(limit=2, window=10, hold=100, clock=clock, max_sources=3)
    throttle.refused("held")
    throttle.refused("held")
    throttle.refused("old-1")
    throttle.refused("old-2")
    clock.now += 11
    throttle.refused("new")
    assert set(throttle.counts) == {"held", "new"}
    assert throttle.retry_after("held") == pytest.approx(89)


def test_the_defaults_fit_the_harness_from_one_address():
    config = load(GOOD)
    # the 500-person incident holds ~580 bots (mega-room, voice, quiet and piled rooms), Locust up to 200
    assert config.max_connections_per_address >= 1000
    assert config.max_connections >= 5 * config.max_connections_per_address
    # auth-storm refuses 5 joins/s from one address, Locust's bad-token users about 8/s at its spike
    assert config.join_failure_limit / config.join_failure_window >= 2 * 5
    # Locust's bad-token users retry on one connection every 1-4 s; bots join right after connecting
    assert config.join_timeout >= 2 * 4


def test_the_descriptor_limit_keeps_a_cap_that_fits_and_lowers_one_that_cannot(caplog):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert fit_descriptor_limit(100) == 100
    if hard != resource.RLIM_INFINITY:
        assert fit_descriptor_limit(hard * 10) == resource.getrlimit(resource.RLIMIT_NOFILE)[0] - 1024
        assert "SIGNALING_MAX_CONNECTIONS" in caplog.text
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_no_created_series_and_the_refusals_are_at_zero_from_the_start():
    registry = CollectorRegistry()
    metrics = SignalingMetrics(registry=registry, region="eu")
    metrics.auth_failures.labels("expired").inc()
    metrics.join_duration.observe(0.1)
    names = {s.name for family in registry.collect() for s in family.samples}
    assert not any(name.endswith("_created") for name in names), sorted(names)
    for reason in ("server_full", "address_full", "join_timeout"):
        assert registry.get_sample_value("signaling_protocol_errors_total", {"reason": reason}) == 0
    assert registry.get_sample_value("signaling_auth_failures_total", {"reason": "throttled"}) == 0
