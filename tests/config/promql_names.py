"""Which metric names a PromQL expression reads, and which names the project allows.

Allowed: the metrics of docs/metrics.md (the single list; histogram series as their ``_bucket``,
``_count`` and ``_sum``), the recording rules of prometheus/rules/, and a short list of standard
Prometheus and node_exporter series.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
METRICS_DOC = REPO / "docs" / "metrics.md"
RULES_DIR = REPO / "prometheus" / "rules"

STANDARD_METRICS = frozenset({
    "up", "scrape_duration_seconds", "scrape_samples_scraped",  # every scrape (Prometheus)
    "ALERTS", "ALERTS_FOR_STATE",  # alert state (Prometheus)
    "node_cpu_seconds_total",  # node_exporter
})
KEYWORDS = frozenset({"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
                      "offset", "bool", "inf", "nan", "atan2", "start", "end"})
AGGREGATIONS = frozenset({"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
                          "bottomk", "topk", "quantile", "limitk", "limit_ratio"})
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_NAME = re.compile(r"(?<![\w:.$])([a-zA-Z_:][\w:]*)(?![\w:])(?!\s*\()")
_DOC_ROW = re.compile(r"^\|\s*`([a-zA-Z_:][\w:]*)`\s*\|", re.M)


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (functions, keywords and label names left out)."""
    text = _STRINGS.sub('""', expr)
    text = re.sub(r"#[^\n]*", " ", text)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = _GROUPING.sub(" ", text)
    return {n for n in _NAME.findall(text) if n.lower() not in KEYWORDS and n not in AGGREGATIONS}


def documented_metrics() -> set[str]:
    return set(_DOC_ROW.findall(METRICS_DOC.read_text()))


def rule_documents() -> dict[str, dict]:
    return {path.name: yaml.safe_load(path.read_text()) for path in sorted(RULES_DIR.glob("*.yml"))}


def all_rules() -> list[dict]:
    return [rule for doc in rule_documents().values() for group in doc["groups"] for rule in group["rules"]]


def recording_rule_names() -> set[str]:
    return {rule["record"] for rule in all_rules() if "record" in rule}


def unknown_metrics(names: set[str]) -> set[str]:
    """Names neither documented, nor recorded, nor standard (histogram suffixes resolved)."""
    allowed = documented_metrics() | recording_rule_names() | STANDARD_METRICS
    return {n for n in names if n not in allowed and re.sub(r"_(bucket|count|sum)$", "", n) not in allowed}
