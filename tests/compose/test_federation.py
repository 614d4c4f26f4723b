"""The federation profile's configs (prometheus/federation/): promtool, their design, and a real run.

The run is native: two regional Prometheus processes and one global one (Debian's binary, through
lab.monitoring), with the committed files laid out as Compose mounts them and only their targets
and intervals rewritten. The regional servers scrape small HTTP servers exposing sfu_* and
signaling_* series at known rates; the global server must answer the cross-region query its
config documents with both regions, each under its own `region` label.
"""

from __future__ import annotations

import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from lab.labs.federation import write_federation_configs
from lab.monitoring import Prometheus
from lab.rule_overrides import render_prometheus
from sfu_stack.readiness import wait_until

REPO = Path(__file__).resolve().parents[2]
FEDERATION = REPO / "prometheus" / "federation"
CONFIGS = sorted(FEDERATION.glob("*.yml"))
REGIONS = {"region-a": "prometheus-region-a", "region-b": "prometheus-region-b"}
CROSS_REGION_TOTAL = "sum(instance:sfu_egress_bits:rate1m)"
PER_REGION = "sum by (region) (instance:sfu_egress_bits:rate1m)"
NODES_UP = 'count by (region) (up{job="sfu_nodes"} == 1)'
SATURATION = "sum by (region) (instance:sfu_saturation:index)"
# Node i sends i Mbit/s: region-a (nodes 1, 2) 3 Mbit/s, region-b (nodes 3, 4) 7 Mbit/s. Its Admin API
# answers in i/10 s, a saturation index of i/5 (round trip / 0.5 s): region-a 0.6, region-b 1.4.
EGRESS_BPS = {f"sfu-node-0{i}": i * 1_000_000 for i in range(1, 5)}
INTERVAL = "1s"


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((FEDERATION / name).read_text())


@pytest.mark.parametrize("config", CONFIGS, ids=[c.name for c in CONFIGS])
def test_promtool_accepts_each_federation_config_with_the_rules_it_loads(config):
    run = subprocess.run(["promtool", "check", "config", str(config)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "WARNING" not in run.stdout + run.stderr, run.stdout + run.stderr


def test_the_regions_split_the_four_nodes_and_reuse_the_committed_rules_and_compose_targets():
    assert {c.name for c in CONFIGS} == {"global.yml", "region-a.yml", "region-b.yml"}
    assert not list(FEDERATION.rglob("*rules*")), "the regional servers load ../rules: no copy here"
    sfu_groups = yaml.safe_load((REPO / "prometheus/targets/compose/sfu_nodes.yml").read_text())
    nodes = [g["labels"]["node"] for g in sfu_groups]
    kept: dict[str, list[str]] = {}
    for region in REGIONS:
        document = load(f"{region}.yml")
        assert document["global"]["external_labels"]["region"] == region
        assert document["rule_files"] == ["../rules/*_recording.yml"]
        jobs = {job["job_name"]: job for job in document["scrape_configs"]}
        assert [sd["files"] for sd in jobs["sfu_nodes"]["file_sd_configs"]] == [["../targets/active/sfu_nodes*.yml"]]
        (keep,) = [r for r in jobs["sfu_nodes"]["relabel_configs"] if r.get("action") == "keep"]
        kept[region] = [n for n in nodes if re.fullmatch(keep["regex"], n)]
    assert kept == {"region-a": nodes[:2], "region-b": nodes[2:]}
    assert "signaling_backend" in {j["job_name"] for j in load("region-a.yml")["scrape_configs"]}
    assert "signaling_backend" not in {j["job_name"] for j in load("region-b.yml")["scrape_configs"]}


def test_the_global_server_federates_only_recording_rules_and_up_and_documents_the_cross_region_query():
    document = load("global.yml")
    (job,) = document["scrape_configs"]
    assert job["honor_labels"] is True and job["metrics_path"] == "/federate"
    assert job["params"]["match[]"] == ['{__name__=~"instance:.*|job:.*"}', '{__name__="up"}']
    assert [t for sc in job["static_configs"] for t in sc["targets"]] == [f"{s}:9090" for s in REGIONS.values()]
    assert "region" not in document["global"].get("external_labels", {})
    text = (FEDERATION / "global.yml").read_text()
    assert f"#   {CROSS_REGION_TOTAL}\n" in text and f"#   {PER_REGION}\n" in text


# ---- a real federation -------------------------------------------------------------------------

class FakeNode(Collector):
    """An exporter's media counters, growing at a fixed rate from ``start``."""

    def __init__(self, egress_bps: float, start: float) -> None:
        self.egress_bps, self.start = egress_bps, start
        self.admin_rtt = egress_bps / 10_000_000

    def collect(self) -> Iterator[Any]:
        elapsed = time.time() - self.start
        sent = CounterMetricFamily("sfu_bytes", "RTP payload bytes", labels=["direction", "media"])
        sent.add_metric(["sent", "video"], self.egress_bps / 8 * elapsed)
        sent.add_metric(["received", "video"], self.egress_bps / 80 * elapsed)
        yield sent
        yield GaugeMetricFamily("sfu_active_handles", "plugin handles", value=10)
        yield GaugeMetricFamily("sfu_admin_api_rtt_seconds", "Admin API round trip", value=self.admin_rtt)


class FakeSignaling(Collector):
    """One refused token per second, and a gauge with the service's own `region` label."""

    def __init__(self, start: float) -> None:
        self.start = start

    def collect(self) -> Iterator[Any]:
        failures = CounterMetricFamily("signaling_auth_failures", "refused tokens", labels=["reason"])
        failures.add_metric(["bad_signature"], time.time() - self.start)
        yield failures
        participants = GaugeMetricFamily("signaling_participants_active", "participants", labels=["region"])
        participants.add_metric(["local"], 5)
        yield participants


@pytest.fixture
def fake_targets() -> Iterator[dict[str, int]]:
    """Name (sfu-node-0N, signaling) -> port of a running HTTP server exposing its series."""
    start = time.time()
    collectors: dict[str, Collector] = {n: FakeNode(bps, start) for n, bps in EGRESS_BPS.items()}
    collectors["signaling"] = FakeSignaling(start)
    servers, ports = [], {}
    try:
        for name, collector in collectors.items():
            registry = CollectorRegistry()
            registry.register(collector)
            server, _ = start_http_server(0, addr="127.0.0.1", registry=registry)
            servers.append(server)
            ports[name] = server.server_address[1]
        yield ports
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def lay_out(root: Path, targets: dict[str, int], server_ports: dict[str, int]) -> Path:
    """The prometheus/ folder as Compose mounts it, with targets on 127.0.0.1 and 1 s intervals.

    Only addresses and intervals change: the federation configs, rules and relabelling are the
    committed ones. Returns the laid-out federation/ folder.
    """
    render_prometheus(root, target_set="compose", targets={
        "sfu_nodes": [{"targets": [f"127.0.0.1:{targets[n]}"], "labels": {"node": n}} for n in EGRESS_BPS],
        "signaling_backend": [{"targets": [f"127.0.0.1:{targets['signaling']}"]}],
    })
    return write_federation_configs(root / "federation", server_ports, INTERVAL)


def query_at(server: Prometheus, promql: str, at: str) -> list[dict[str, Any]]:
    answer = server.get_json("/api/v1/query", query=promql, time=at)
    assert answer["status"] == "success", answer
    return list(answer["data"]["result"])


def by_label(result: list[dict[str, Any]], label: str) -> dict[str, float]:
    return {series["metric"].get(label, ""): float(series["value"][1]) for series in result}


def test_the_global_server_answers_the_cross_region_total_with_both_regions_under_their_own_label(
        fake_targets, tmp_path):
    server_ports = {service: free_port() for service in [*REGIONS.values(), "prometheus-global"]}
    folder = lay_out(tmp_path / "prometheus", fake_targets, server_ports)
    servers = {service: Prometheus(folder / f"{service.removeprefix('prometheus-')}.yml", tmp_path / service,
                                   port=port) for service, port in server_ports.items()}
    try:
        for server in servers.values():
            server.start_and_wait()
        world = servers["prometheus-global"]

        def every_node_egress() -> bool:
            return len(world.query("instance:sfu_egress_bits:rate1m > 0")) == len(EGRESS_BPS)

        wait_until(every_node_egress, timeout=60, interval=0.5, what="the global server sees every node's egress")
        # rate(...[1m]) reads low until a minute of samples exists: check the sums, not the rates,
        # both evaluated at one instant.
        now = f"{time.time():.3f}"
        per_region = by_label(query_at(world, PER_REGION, now), "region")
        (total,) = query_at(world, CROSS_REGION_TOTAL, now)
        assert float(total["value"][1]) == pytest.approx(sum(per_region.values()))
        assert per_region["region-b"] > per_region["region-a"] > 0

        # A recording rule over gauges arrives exactly: the global sum equals each region's own.
        wait_until(lambda: by_label(world.query(SATURATION), "region") == pytest.approx(
            {"region-a": 0.6, "region-b": 1.4}), timeout=30, interval=0.5, what="saturation index federated")
        for region, service in REGIONS.items():
            (own,) = servers[service].query("sum(instance:sfu_saturation:index)")
            assert float(own["value"][1]) == pytest.approx({"region-a": 0.6, "region-b": 1.4}[region])

        # Series keep their own labels (honor_labels) and carry their region's external label.
        nodes = {(s["metric"]["instance"], s["metric"]["region"], s["metric"]["job"])
                 for s in world.query("instance:sfu_egress_bits:rate1m")}
        assert nodes == {("sfu-node-01", "region-a", "sfu_nodes"), ("sfu-node-02", "region-a", "sfu_nodes"),
                         ("sfu-node-03", "region-b", "sfu_nodes"), ("sfu-node-04", "region-b", "sfu_nodes")}
        wait_until(lambda: by_label(world.query(NODES_UP), "region") == {"region-a": 2, "region-b": 2},
                   timeout=30, interval=0.5, what="up of each region's nodes federated")

        # Signaling belongs to region-a: its recording rule arrives once, with that region.
        wait_until(lambda: bool(world.query("job:signaling_auth_failures:rate5m")), timeout=30, interval=0.5,
                   what="the signaling recording rule federated")
        (auth,) = world.query("job:signaling_auth_failures:rate5m")
        assert auth["metric"]["region"] == "region-a" and float(auth["value"][1]) > 0
        # The regional server dropped the service's own region label: the external label speaks for it.
        (participants,) = servers["prometheus-region-a"].query("signaling_participants_active")
        assert "region" not in participants["metric"] and "exported_region" not in participants["metric"]

        # Only high-level series cross: no raw exporter or signaling series on the global server.
        assert world.query('count({__name__=~"sfu_.*|signaling_.*"})') == []
        assert {t["labels"]["job"] for t in world.targets()} == {"federate"}
    finally:
        for server in servers.values():
            server.stop()
