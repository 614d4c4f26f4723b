"""Every PromQL query of the Grafana dashboards, with Grafana's variables replaced, ready to run.

Grafana cannot run here, so tests (and ``lab report``) read the queries from
``grafana/dashboards/*.json`` and run them against Prometheus themselves. Standard library only::

    from lab.dashboards import panel_queries
    for q in panel_queries():                         # every panel's every target
        result = prometheus_query(q.promql)           # e.g. GET /api/v1/query?query=...
    for v in variable_queries():                      # label_values(selector, label) variables
        assert all(v.label in s["metric"] for s in prometheus_query(v.promql))

Substitutions: ``$__rate_interval`` -> 1m, ``$__interval`` -> 15s, ``$__range`` -> 1h (and their
``_ms`` / ``_s`` forms), each dashboard template variable (``$node``, ``${node}``, ``${node:regex}``,
``[[node]]``) -> ``.*`` (its "All" value) unless given in ``variables``. A variable the dashboard does
not define is an error, not a silent empty string.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DASHBOARDS_DIR = Path(__file__).resolve().parents[2] / "grafana" / "dashboards"
BUILTINS = {
    "__rate_interval": "1m", "__interval": "15s", "__interval_ms": "15000",
    "__range": "1h", "__range_s": "3600", "__range_ms": "3600000",
}
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)(?::\w+)?\]\]")


_LABEL_VALUES = re.compile(r"^label_values\((.*),\s*(\w+)\)$", re.S)


@dataclass(frozen=True)
class VariableQuery:
    dashboard: str  # dashboard uid
    variable: str  # template variable name
    label: str  # the label whose values the variable offers
    promql: str  # the series selector, other variables replaced: its results must carry ``label``


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str  # dashboard uid
    panel: str  # panel title
    ref_id: str
    expr: str  # as written in the JSON
    promql: str  # variables replaced
    instant: bool


def substitute(expr: str, template_variables: Mapping[str, str], variables: Mapping[str, str] | None = None) -> str:
    """Replace Grafana's built-in and template variables in ``expr``."""
    values = {**BUILTINS, **template_variables, **(variables or {})}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        if name not in values:
            raise KeyError(f"variable ${name} is neither a Grafana built-in nor defined by the dashboard")
        return values[name]

    return _VARIABLE.sub(replace, expr)


def panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows' nested panels included (rows themselves left out)."""
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            yield from panels(panel)
        else:
            yield panel


def load_dashboards(dashboards_dir: Path = DASHBOARDS_DIR) -> dict[str, dict[str, Any]]:
    """File name -> parsed dashboard JSON."""
    return {path.name: json.loads(path.read_text()) for path in sorted(Path(dashboards_dir).glob("*.json"))}


def panel_queries(dashboards_dir: Path = DASHBOARDS_DIR,
                  variables: Mapping[str, str] | None = None) -> list[PanelQuery]:
    """Every target of every panel of every dashboard in ``dashboards_dir``."""
    result = []
    for dashboard in load_dashboards(dashboards_dir).values():
        template = {v["name"]: ".*" for v in dashboard.get("templating", {}).get("list", [])}
        for panel in panels(dashboard):
            for target in panel.get("targets", []):
                expr = target.get("expr", "")
                result.append(PanelQuery(dashboard["uid"], panel.get("title", ""), target.get("refId", ""), expr,
                                         substitute(expr, template, variables), bool(target.get("instant"))))
    return result


def variable_queries(dashboards_dir: Path = DASHBOARDS_DIR,
                     variables: Mapping[str, str] | None = None) -> list[VariableQuery]:
    """Every ``label_values(selector, label)`` template variable, as a PromQL selector to run."""
    result = []
    for dashboard in load_dashboards(dashboards_dir).values():
        template = dashboard.get("templating", {}).get("list", [])
        defaults = {v["name"]: ".*" for v in template}
        for variable in template:
            query = variable.get("query")
            text = query.get("query", "") if isinstance(query, dict) else str(query or "")
            match = _LABEL_VALUES.match(text.strip())
            if match is None:
                raise ValueError(f"{dashboard['uid']} ${variable['name']}: not a label_values(selector, label) query")
            result.append(VariableQuery(dashboard["uid"], variable["name"], match.group(2),
                                        substitute(match.group(1), defaults, variables)))
    return result
