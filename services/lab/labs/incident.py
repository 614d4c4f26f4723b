"""What the last incident was, computed from Prometheus alone (labs 5 and 7 compare the trainee's view with it).

Over the last scenario's time range: the hot node is the one whose CPU-budget series (the left side
of the committed ``SFUHighCPU`` rule, read from prometheus/rules/sfu_alerts.yml) peaked highest;
alert intervals come from the raw ``ALERTS{alertstate="firing"}`` samples; the placement policy
that fed the hot node is the one with the most placements there before ``SFUHighCPU`` fired.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from lab.labs.common import by_node, instant, node_of
from sfu_stack import topology

INCIDENT_ALERTS = ("SFUHighCPU", "SFUNackStorm")
RULES_FILE = topology.REPO / "prometheus" / "rules" / "sfu_alerts.yml"
PLACEMENTS = "signaling_room_placements_total"  # signaling.metrics


def alert_expression(alertname: str) -> str:
    for group in yaml.safe_load(RULES_FILE.read_text())["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == alertname:
                return str(rule["expr"]).strip()
    raise KeyError(f"{alertname} is not in {RULES_FILE}")


def cpu_series() -> str:
    """The series SFUHighCPU compares with its threshold (``instance:sfu_process_cpu:budget_ratio_rate1m``)."""
    return alert_expression("SFUHighCPU").split(">")[0].strip()


@dataclass
class Incident:
    start: float
    end: float
    peaks: dict[str, float]  # node -> peak CPU share of budget
    firing: dict[tuple[str, str], list[float]] = field(default_factory=dict)  # (alert, node) -> sample times
    policy: str | None = None  # what placed rooms on the hot node before SFUHighCPU fired

    @property
    def hot(self) -> str | None:
        return max(self.peaks, key=self.peaks.__getitem__) if self.peaks else None

    def fired(self, alertname: str, node: str | None) -> list[float]:
        return self.firing.get((alertname, node or ""), [])


def incident_truth(prometheus: str, result: dict[str, Any]) -> Incident:
    start, end = float(result["started_at"]), float(result["ended_at"])
    span = f"{max(int(end - start), 60)}s"
    peaks = by_node(instant(prometheus, f"max by (instance) (max_over_time({cpu_series()}[{span}]))", end))
    incident = Incident(start, end, peaks)
    names = "|".join(INCIDENT_ALERTS)
    for series in instant(prometheus, f'ALERTS{{alertname=~"{names}", alertstate="firing"}}[{span}]', end):
        key = (series["metric"]["alertname"], node_of(series["metric"]))
        incident.firing.setdefault(key, []).extend(float(t) for t, _ in series["values"])
    hot, first = incident.hot, incident.fired("SFUHighCPU", incident.hot)
    if hot and first:
        before = f"{max(int(min(first) - start), 60)}s"
        placed = instant(prometheus, f'sum by (policy) (increase({PLACEMENTS}{{node="{hot}"}}[{before}]))',
                         min(first))
        counts = {s["metric"].get("policy", ""): float(s["value"][1]) for s in placed}
        incident.policy = max(counts, key=counts.__getitem__) if counts else None
    return incident
