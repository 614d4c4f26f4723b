"""The report tests' data: a synthetic 20-minute incident on four SFU nodes, backfilled 3 hours in the past.

The series are written as OpenMetrics and backfilled with ``promtool tsdb create-blocks-from openmetrics``;
recording rules do not backfill, so the recorded series the dashboards read (``instance:...``, ``job:...``)
and Prometheus's own ``ALERTS`` series are written directly, consistent with the raw counters. Then the
real ``prometheus`` binary serves the blocks (no scrape targets). No Janus, no media.
"""

from __future__ import annotations

import math
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.monitoring import Prometheus, binary
from lab.stack import free_port

NODES = ("sfu-node-01", "sfu-node-02", "sfu-node-03", "sfu-node-04")
HOT = "sfu-node-04"
RULES = Path(__file__).resolve().parents[2] / "prometheus" / "rules"
EVERY = 15  # seconds between samples, as the lab's scrape and evaluation interval
BUDGET = 0.05  # cores per node
PHASES = ((0, "baseline", {"policy": "least_rooms"}), (30, "mega-room", {"participants": 60}),
          (60, "pile-up", {"interval_s": 5.0}), (660, "fix", {"policy": "least_handles", "drained": HOT}),
          (1140, "done", {}))
# Alert windows in seconds since the scenario's start: (pending from, firing from, firing until), inclusive.
ALERT_WINDOWS = {"SFUHighCPU": (360, 480, 840), "SFUNackStorm": (300, 420, 780)}
SEVERITY = {"SFUHighCPU": "critical", "SFUNackStorm": "warning"}


@dataclass(frozen=True)
class Incident:
    url: str
    start: float  # the scenario's start, unix seconds
    result: dict[str, Any]  # a scenario result JSON matching the data
    first: float  # first and last sample
    last: float

    def at(self, seconds: float) -> float:
        return self.start + seconds


def _ramp(t: float, t1: float, t2: float, a: float, b: float) -> float:
    """a before t1, b after t2, linear between."""
    if t <= t1:
        return a
    if t >= t2:
        return b
    return a + (b - a) * (t - t1) / (t2 - t1)


def cpu_ratio(node: str, t: float) -> float:
    if node == HOT:
        return _ramp(t, 30, 300, 0.25, 0.97) if t < 660 else _ramp(t, 660, 840, 0.97, 0.3)
    index = NODES.index(node)
    return 0.18 + 0.04 * index + 0.03 * math.sin(t / 90 + index)


def handles(node: str, t: float) -> float:
    if node == HOT:
        return 62 + (min(t, 660) - 60) // 30 * 3 if t >= 60 else 62 if t >= 30 else 4
    return 4 + NODES.index(node) + (t // 120 if t < 660 else 5 + (t - 660) // 60)


def nack_rate(node: str, t: float) -> float:  # NACKs/s
    if node == HOT:
        return 1.0 + (60.0 * _ramp(t, 240, 360, 0, 1) if t < 700 else 60.0 * _ramp(t, 700, 760, 1, 0))
    return 0.5 + 0.1 * NODES.index(node)


def egress_bps(node: str, t: float) -> float:
    return 8000.0 * handles(node, t) * (0.8 if node == HOT and 300 <= t < 700 else 1.0)


LINK_BPS = 9e6  # each node's shaped link


def link_drop_rate(node: str, t: float) -> float:  # packets/s the full link drops: the hot node only, before NACKs
    return 40.0 * _ramp(t, 200, 300, 0, 1) if node == HOT and t < 700 else 0.0


def openmetrics(start: float, begin: int, end: int) -> str:
    """Every series of the dashboards from ``begin`` to ``end`` s after ``start``, one sample every 15 s."""
    times = range(begin, end + 1, EVERY)
    families: dict[str, list[str]] = {}

    def add(name: str, labels: dict[str, str], value: Callable[[float], float], when: range = times) -> None:
        text = ",".join(f'{k}="{v}"' for k, v in labels.items())
        families.setdefault(name, []).extend(f"{name}{{{text}}} {value(t):.6g} {start + t:.0f}" for t in when)

    def counter(rate: Callable[[float], float]) -> Callable[[float], float]:
        totals, total = {}, 0.0
        for t in times:
            totals[t] = total
            total += rate(t) * EVERY
        return lambda t: totals[t]

    for node in NODES:
        sfu = {"job": "sfu_nodes", "instance": node, "node": node, "service": "janus-exporter", "env": "lab",
               "region": "local"}
        add("sfu_cpu_budget_cores", sfu, lambda t: BUDGET)
        add("sfu_process_cpu_seconds_total", sfu, counter(lambda t, n=node: cpu_ratio(n, t) * BUDGET))
        add("instance:sfu_process_cpu:budget_ratio_rate1m", sfu, lambda t, n=node: cpu_ratio(n, t))
        add("instance:sfu_saturation:index", sfu, lambda t, n=node: max(cpu_ratio(n, t), 0.05))
        add("instance:sfu_egress_bits:rate1m", sfu, lambda t, n=node: egress_bps(n, t))
        add("instance:sfu_ingress_bits:rate1m", sfu, lambda t, n=node: 64000.0 + 1000 * NODES.index(n))
        add("instance:sfu_egress_bits_per_handle:rate1m", sfu, lambda t, n=node: egress_bps(n, t) / handles(n, t))
        add("instance:sfu_nacks:rate1m", sfu, lambda t, n=node: nack_rate(n, t))
        for direction in ("sent", "received"):
            add("sfu_nacks_total", {**sfu, "direction": direction, "media": "video"},
                counter(lambda t, n=node: nack_rate(n, t) / 2))
            add("sfu_bytes_total", {**sfu, "direction": direction, "media": "video"},
                counter(lambda t, n=node, d=direction: (egress_bps(n, t) if d == "sent" else 64000.0) / 8))
        add("sfu_link_up", sfu, lambda t: 1)
        add("sfu_link_capacity_bytes_per_second", sfu, lambda t: LINK_BPS / 8)
        add("sfu_link_queue_limit_bytes", sfu, lambda t: LINK_BPS / 8 * 0.2)
        add("sfu_link_sent_bytes_total", sfu, counter(lambda t, n=node: min(egress_bps(n, t), LINK_BPS) / 8))
        add("sfu_link_dropped_packets_total", sfu, counter(lambda t, n=node: link_drop_rate(n, t)))
        add("sfu_link_backlog_bytes", sfu, lambda t, n=node: 220000 if link_drop_rate(n, t) else 0)
        add("bot_retransmissions_received_total", {"job": "loadtest_bots", "instance": "198.18.125.1:9400",
                                                   "node": node}, counter(lambda t, n=node: nack_rate(n, t) * 0.8))
        add("sfu_active_handles", sfu, lambda t, n=node: handles(n, t))
        add("sfu_rooms_active", sfu, lambda t, n=node: 1 + handles(n, t) // 6)
        add("sfu_peerconnections_active", sfu, lambda t, n=node: handles(n, t) - 1)
        add("sfu_room_participants_max", sfu, lambda t, n=node: 60 if n == HOT and t >= 30 else 4)
        for le in ("2", "10", "50", "+Inf"):
            add("sfu_room_size_participants_bucket", {**sfu, "le": le},
                lambda t, n=node, le=le: 1 + handles(n, t) // 6 - (1 if le != "+Inf" and n == HOT and t >= 30 else 0))
        add("sfu_admin_api_rtt_seconds", sfu, lambda t, n=node: 0.004 + 0.2 * max(cpu_ratio(n, t) - 0.8, 0))
        add("janus_exporter_scrape_duration_seconds", sfu, lambda t, n=node: 0.01 + 0.3 * max(cpu_ratio(n, t) - 0.8, 0))
        add("janus_up", sfu, lambda t: 1)
        add("sfu_process_resident_memory_bytes", sfu, lambda t, n=node: 80e6 + 1e5 * handles(n, t))
        add("sfu_process_threads", sfu, lambda t, n=node: 20 + handles(n, t) // 10)

    signaling = {"job": "signaling_backend", "instance": "127.0.0.1:8080", "service": "signaling", "env": "lab",
                 "region": "local"}
    add("signaling_auth_failures_total", signaling, counter(lambda t: 0.05))
    add("signaling_rooms_active", signaling, lambda t: sum(1 + handles(n, t) // 6 for n in NODES))
    add("signaling_participants_active", signaling, lambda t: sum(handles(n, t) for n in NODES))
    add("signaling_websockets_active", signaling, lambda t: sum(handles(n, t) for n in NODES))
    add("signaling_event_loop_lag_seconds", signaling, lambda t: 0.002)
    for node in NODES:
        for policy in ("least_rooms", "least_handles"):
            active = (lambda t: t < 660) if policy == "least_rooms" else (lambda t: t >= 660)
            rate = (0.1 if node == HOT else 0.05) if policy == "least_rooms" else (0 if node == HOT else 0.07)
            add("signaling_room_placements_total", {**signaling, "node": node, "policy": policy},
                counter(lambda t, a=active, r=rate: r if a(t) else 0.0))
        for le in ("0.05", "0.25", "1", "+Inf"):
            add("signaling_janus_request_duration_seconds_bucket",
                {**signaling, "node": node, "request": "attach", "le": le},
                counter(lambda t, n=node, le=le: 0.2 if le != "0.05" or cpu_ratio(n, t) < 0.8 else 0.02))
    recorded = {"job": "signaling_backend", "env": "lab", "region": "local"}
    add("job:signaling_join_duration_seconds:p95_rate5m", recorded, lambda t: 0.04 + 0.1 * (cpu_ratio(HOT, t) > 0.8))
    add("job:signaling_ice_negotiation_seconds:p95_rate5m", recorded, lambda t: 0.3)
    add("node_cpu_seconds_total", {"job": "node_exporter", "instance": "127.0.0.1:9100", "cpu": "0", "mode": "idle",
                                   "service": "node-exporter", "env": "lab", "region": "local"},
        counter(lambda t: 0.6))

    for alertname, (pending, firing, until) in ALERT_WINDOWS.items():
        labels = {"alertname": alertname, "job": "sfu_nodes", "instance": HOT, "node": HOT, "service": "janus-exporter",
                  "env": "lab", "region": "local", "severity": SEVERITY[alertname]}
        add("ALERTS", {**labels, "alertstate": "pending"}, lambda t: 1, range(pending, firing, EVERY))
        add("ALERTS", {**labels, "alertstate": "firing"}, lambda t: 1, range(firing, until + 1, EVERY))

    lines = []
    for name, samples in families.items():
        lines.append(f"# TYPE {name} unknown")
        lines.extend(samples)
    return "\n".join(lines) + "\n# EOF\n"


def scenario_result(start: float) -> dict[str, Any]:
    """The JSON ``lab scenario incident`` would have written for this incident."""
    return {
        "scenario": "incident", "size": 60, "ok": True, "error": None,
        "started_at": start, "ended_at": start + 1150,
        "phases": [{"phase": name, "at": float(at), **details} for at, name, details in PHASES],
        # As the runner saw them (it polls every 2 s): a little later than the rule evaluations.
        "alerts": [{"alertname": a, "node": HOT, "fired_at": firing + 3.0, "resolved_at": until + 17.0}
                   for a, (_, firing, until) in ALERT_WINDOWS.items()],
        "facts": {"mega_room_node": HOT, "hot_node_chain": [
            {"at": at, "link_sent_kbit_per_s": min(egress_bps(HOT, at), LINK_BPS) / 1000,
             "link_drops_per_s": link_drop_rate(HOT, at), "nacks_per_s": nack_rate(HOT, at)} for at in (0, 300, 800)]},
    }


@contextmanager
def backfilled_prometheus(workdir: Path) -> Iterator[Incident]:
    """Backfill the incident into ``workdir`` and serve it with the real prometheus binary."""
    # The scenario starts 3 h 20 min before the last full hour: every sample is in the past, nothing in the head.
    start = (int(time.time()) // 3600 * 3600) - 3 * 3600 - 20 * 60
    source = workdir / "incident.om.txt"
    source.write_text(openmetrics(start, -120, 1260))
    promtool = Path(binary("prometheus")).with_name("promtool")
    data = workdir / "prometheus-data"
    subprocess.run([str(promtool), "tsdb", "create-blocks-from", "openmetrics", str(source), str(data)],
                   check=True, capture_output=True, timeout=60)
    config = workdir / "prometheus.yml"
    # The committed rules, for /api/v1/rules (the alerts' evaluation interval); evaluated now, 3 h after the
    # data, they find nothing and add nothing.
    config.write_text("global:\n  scrape_interval: 15s\n  evaluation_interval: 15s\n"
                      f"rule_files: ['{RULES}/*.yml']\n")
    prometheus = Prometheus(config, workdir, port=free_port(), retention="30d")
    prometheus.start_and_wait(timeout=30)
    try:
        yield Incident(prometheus.url, float(start), scenario_result(float(start)), start - 120.0, start + 1260.0)
    finally:
        prometheus.stop()
