"""The incident report: every dashboard panel as a PNG over a time range, alerts shaded, phases marked.

``lab report`` (or ``python -m lab.report``) reads the queries of ``grafana/dashboards/*.json`` through
``lab.dashboards.panel_queries`` (the one source of the dashboards' PromQL), runs each as a range query
against a Prometheus (natively ``lab up``'s, or the Compose stack's on 127.0.0.1:9090) and writes::

    OUT/index.html            timeline of phases and alerts, every plot with its queries (no JS)
    OUT/<uid>--<title>.png    one plot per panel (uid and title slug)
    OUT/report.json           what was drawn: per panel the series with data, the shaded alert intervals

The time range defaults to the last scenario run (``LAB_HOME/scenarios/last.json``) with a margin.
Alert intervals come from Prometheus's ``ALERTS{alertstate="firing"}`` samples (each interval runs from
the first to the last rule evaluation that found the alert firing); the scenario result's own alert
spans are used only when Prometheus has no ALERTS series in the range. Phases come from the result.

A query error is written into its panel (PNG and HTML); a panel without data says "no data"; a
Prometheus that does not answer is a ``PrometheusUnreachable`` (exit 1 from the command line).
matplotlib is imported only when drawing, so importing this module stays cheap for ``lab``'s CLI.
"""

from __future__ import annotations

import argparse
import html
import ipaddress
import json
import math
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from lab.dashboards import DASHBOARDS_DIR, PanelQuery, load_dashboards, panel_queries, panels
from lab.native import lab_home
from lab.netns import NETWORK, UP_SLOT
from sfu_stack import topology

# lab up's Prometheus: the namespace end (.2) of the /30 of slot UP_SLOT (198.18.125.2).
NATIVE_PROMETHEUS = f"http://{ipaddress.ip_address(int(NETWORK.network_address) + 4 * UP_SLOT + 2)}" \
                    f":{topology.PROMETHEUS_PORT}"
COMPOSE_PROMETHEUS = f"http://127.0.0.1:{topology.PROMETHEUS_PORT}"
MAX_POINTS = 300  # per series: the step is the smallest nice step that keeps the range under this
NICE_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400)
MARGIN = 60.0  # seconds shown before and after a scenario run
FIRING = 'ALERTS{alertstate="firing"}'

UNITS = {  # Grafana unit -> (axis label, matplotlib formatter kind, unit suffix)
    "percentunit": ("share", "percent1", ""),
    "percent": ("percent", "percent100", ""),
    "bps": ("bits/s", "eng", "b/s"),
    "Bps": ("bytes/s", "eng", "B/s"),
    "pps": ("packets/s", "eng", "/s"),
    "reqps": ("requests/s", "eng", "/s"),
    "s": ("seconds", "eng", "s"),
    "ms": ("milliseconds", "eng", "ms"),
    "bytes": ("bytes", "eng", "B"),
    "short": ("", "eng", ""),
}
# Lines in blues, greens, purples, browns; alert shading in reds and oranges, so neither is read as the other.
SERIES_COLORS = ("#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#17becf", "#e377c2", "#bcbd22", "#7f7f7f",
                 "#000000", "#aec7e8")
ALERT_COLORS = ("#e41a1c", "#ff7f00", "#f0c000", "#c51b7d", "#fb9a99", "#fdbf6f", "#b15928", "#999999")
LINESTYLES = ("-", ":", "-.")
RIGHT_LINESTYLES = ("--", (0, (6, 2, 1, 2)))
MAX_LEGEND = 16  # series named in a plot's legend; beyond, the highest are named, the rest drawn thin


class ReportError(RuntimeError):
    """The report cannot be made; the message says why."""


class PrometheusUnreachable(ReportError):
    """Nothing (or not a Prometheus) answers at the URL."""


class QueryError(RuntimeError):
    """Prometheus refused or failed one query; the message is Prometheus's."""


# ---- the panels --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Panel:
    dashboard: str  # dashboard uid
    dashboard_title: str
    title: str
    type: str  # timeseries, stat, bargauge, ...
    unit: str
    axis_label: str
    queries: tuple[PanelQuery, ...]
    legend: Mapping[str, str]  # ref_id -> legendFormat
    right: Mapping[str, tuple[str, str]]  # ref_id -> (unit, axis label) of the queries on a right axis
    file_name: str  # <uid>--<title slug>.png, with -2, -3 ... when a dashboard repeats a title


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "panel"


def _override(panel: Mapping[str, Any], ref_id: str) -> dict[str, Any]:
    """The properties that the panel's ``byFrameRefID`` overrides set for ``ref_id``."""
    found: dict[str, Any] = {}
    for override in panel.get("fieldConfig", {}).get("overrides", []):
        matcher = override.get("matcher", {})
        if matcher.get("id") == "byFrameRefID" and matcher.get("options") == ref_id:
            found.update({p["id"]: p.get("value") for p in override.get("properties", [])})
    return found


def dashboard_panels(dashboards_dir: Path = DASHBOARDS_DIR,
                     variables: Mapping[str, str] | None = None) -> list[Panel]:
    """Every panel with targets, its queries from ``panel_queries`` and its unit, axes and legends from the JSON."""
    queries = iter(panel_queries(dashboards_dir, variables))
    result: list[Panel] = []
    for dashboard in load_dashboards(dashboards_dir).values():
        for panel in panels(dashboard):
            targets = panel.get("targets", [])
            mine = tuple(next(queries) for _ in targets)
            for target, query in zip(targets, mine, strict=True):
                if (query.dashboard, query.panel, query.ref_id) != (dashboard["uid"], panel.get("title", ""),
                                                                     target.get("refId", "")):
                    raise ReportError(f"panel_queries() and {dashboard['uid']} disagree at {query}")
            if not mine:
                continue
            defaults = panel.get("fieldConfig", {}).get("defaults", {})
            right = {}
            for query in mine:
                props = _override(panel, query.ref_id)
                if props.get("custom.axisPlacement") == "right":
                    right[query.ref_id] = (props.get("unit") or defaults.get("unit") or "short",
                                           props.get("custom.axisLabel") or "")
            name = base = f"{dashboard['uid']}--{slug(panel.get('title', ''))}"
            taken = {p.file_name for p in result}
            for number in range(2, len(result) + 3):
                if f"{name}.png" not in taken:
                    break
                name = f"{base}-{number}"
            result.append(Panel(
                dashboard=dashboard["uid"], dashboard_title=dashboard.get("title", dashboard["uid"]),
                title=panel.get("title", ""), type=panel.get("type", ""), unit=defaults.get("unit") or "short",
                axis_label=defaults.get("custom", {}).get("axisLabel") or "", queries=mine,
                legend={t.get("refId", ""): t.get("legendFormat", "") for t in targets}, right=right,
                file_name=f"{name}.png"))
    return result


# ---- Prometheus ----------------------------------------------------------------------------------------
def _api(prometheus_url: str, path: str, params: Mapping[str, str], timeout: float) -> Any:
    url = f"{prometheus_url.rstrip('/')}{path}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            answer = json.load(reply)
    except urllib.error.HTTPError as exc:  # 400 / 422 / 503 carry Prometheus's error as JSON
        try:
            answer = json.load(exc)
        except ValueError:
            raise QueryError(f"HTTP {exc.code} {exc.reason}") from exc
    except (OSError, ValueError) as exc:
        raise PrometheusUnreachable(f"no Prometheus answers at {prometheus_url}: {exc}") from exc
    if answer.get("status") != "success":
        raise QueryError(f"{answer.get('errorType', 'error')}: {answer.get('error', answer)}")
    return answer["data"]


def check_prometheus(prometheus_url: str, timeout: float = 5.0) -> None:
    """Raise ``PrometheusUnreachable`` unless a Prometheus query API answers at ``prometheus_url``."""
    try:
        _api(prometheus_url, "/api/v1/query", {"query": "vector(1)"}, timeout)
    except QueryError as exc:
        raise PrometheusUnreachable(f"{prometheus_url} answers, but not as a ready Prometheus: {exc}") from exc


def range_query(prometheus_url: str, promql: str, start: float, end: float, step: float,
                timeout: float = 30.0) -> list[dict[str, Any]]:
    data = _api(prometheus_url, "/api/v1/query_range",
                {"query": promql, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}, timeout)
    return list(data["result"])


def choose_step(start: float, end: float, max_points: int = MAX_POINTS) -> float:
    wanted = (end - start) / max_points
    return float(next((s for s in NICE_STEPS if s >= wanted), math.ceil(wanted)))


# ---- alerts and phases ---------------------------------------------------------------------------------
@dataclass
class AlertIntervals:
    alertname: str
    target: str  # node, else instance, else ''
    labels: dict[str, str]
    intervals: list[tuple[float, float]] = field(default_factory=list)  # unix seconds

    @property
    def key(self) -> str:
        return f"{self.alertname} {self.target}".strip()


def _target(labels: Mapping[str, str]) -> str:
    return labels.get("node") or labels.get("instance") or ""


def intervals_from_samples(times: Sequence[float], every: float) -> list[tuple[float, float]]:
    """Group the evaluation times at which an alert was firing into intervals: a gap over 2.5 evaluation
    intervals (``every`` seconds; one missed evaluation is not a gap) splits."""
    times = sorted(times)
    if not times:
        return []
    found = [[times[0], times[0]]]
    for t in times[1:]:
        if t - found[-1][1] > 2.5 * every:
            found.append([t, t])
        else:
            found[-1][1] = t
    return [(a, b) for a, b in found]


def evaluation_intervals(prometheus_url: str, timeout: float = 10.0) -> dict[str, float]:
    """alertname -> its rule group's evaluation interval in seconds, from /api/v1/rules ({} when unknown)."""
    try:
        data = _api(prometheus_url, "/api/v1/rules", {"type": "alert"}, timeout)
    except (QueryError, PrometheusUnreachable):
        return {}
    return {rule["name"]: float(group["interval"]) for group in data.get("groups", [])
            for rule in group.get("rules", []) if group.get("interval")}


def firing_alerts(prometheus_url: str, start: float, end: float, timeout: float = 30.0) -> list[AlertIntervals]:
    """Each firing alert's intervals in [start, end], from the raw samples of ALERTS (not a range query:
    lookback would stretch every interval by up to 5 minutes where no staleness marker ends it).

    The evaluation interval that tells a gap from the next evaluation is the alert's rule group's; for an
    alert Prometheus no longer has a rule for, the smallest spacing of any ALERTS samples (else 15 s)."""
    seconds = max(1, math.ceil(end - start))
    data = _api(prometheus_url, "/api/v1/query", {"query": f"{FIRING}[{seconds}s]", "time": f"{end:.3f}"}, timeout)
    samples = [([float(t) for t, _ in s.get("values", [])],
                {k: v for k, v in s["metric"].items() if k not in ("__name__", "alertstate")}) for s in data["result"]]
    known = evaluation_intervals(prometheus_url, timeout) if samples else {}
    spacings = [b - a for times, _ in samples for a, b in zip(times, times[1:], strict=False) if b - a >= 1]
    fallback = min(spacings, default=15.0)
    merged: dict[tuple[str, str], AlertIntervals] = {}
    for times, labels in samples:
        name = labels.get("alertname", "")
        alert = merged.setdefault((name, _target(labels)), AlertIntervals(name, _target(labels), labels))
        alert.intervals = sorted(alert.intervals + intervals_from_samples(times, known.get(name, fallback)))
    return sorted(merged.values(), key=lambda a: (min(i[0] for i in a.intervals) if a.intervals else 0, a.key))


def result_alerts(result: Mapping[str, Any], end: float) -> list[AlertIntervals]:
    """The scenario result's alert spans (seconds since its start) as intervals; still firing: until ``end``."""
    t0 = float(result["started_at"])
    merged: dict[tuple[str, str], AlertIntervals] = {}
    for span in result.get("alerts", []):
        if span.get("fired_at") is None:
            continue
        alert = merged.setdefault((span["alertname"], span.get("node", "")),
                                  AlertIntervals(span["alertname"], span.get("node", ""),
                                                 {"alertname": span["alertname"], "node": span.get("node", "")}))
        resolved = t0 + span["resolved_at"] if span.get("resolved_at") is not None else end
        alert.intervals.append((t0 + span["fired_at"], resolved))
    return list(merged.values())


def phases(result: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The result's phases with their unix time (``time``)."""
    if not result:
        return []
    t0 = float(result["started_at"])
    return [{**p, "time": t0 + float(p["at"])} for p in result.get("phases", [])]


# ---- series and legends --------------------------------------------------------------------------------
_LEGEND_VAR = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def legend_for(labels: Mapping[str, str], legend_format: str, varying: Sequence[str]) -> str:
    """Grafana's ``{{label}}`` legend format; empty or ``__auto``: the labels that vary between series."""
    if legend_format and legend_format != "__auto":
        text = " ".join(_LEGEND_VAR.sub(lambda m: labels.get(m.group(1), ""), legend_format).split())
        if text:
            return text
    shown = [f"{k}={labels[k]}" for k in varying if k in labels]
    return ", ".join(shown) or labels.get("__name__", "") or "value"


def _varying(series: Sequence[Mapping[str, Any]]) -> list[str]:
    keys = sorted({k for s in series for k in s["metric"]})
    return [k for k in keys if len({s["metric"].get(k) for s in series}) > 1] or \
        [k for k in ("node", "instance") if any(k in s["metric"] for s in series)]


def _sort_key(labels: Mapping[str, str]) -> tuple[tuple[int, float, str], ...]:
    """Series in label order, numbers (``le`` buckets) by value."""
    key = []
    for name in sorted(labels):
        try:
            key.append((0, float(labels[name]), name))
        except ValueError:
            key.append((1, 0.0, f"{name}={labels[name]}"))
    return tuple(key)


@dataclass
class Drawn:
    """One query of a panel, as drawn."""

    ref_id: str
    promql: str
    axis: str  # left or right
    error: str | None = None
    series: list[dict[str, Any]] = field(default_factory=list)  # legend, labels, points, first, last, values


def _points(values: Sequence[Sequence[Any]]) -> tuple[list[float], list[float]]:
    times, numbers = [], []
    for t, v in values:
        number = float(v)
        times.append(float(t))
        numbers.append(number if math.isfinite(number) else math.nan)
    return times, numbers


def run_panel(prometheus_url: str, panel: Panel, start: float, end: float, step: float,
              timeout: float) -> list[Drawn]:
    drawn = []
    for query in panel.queries:
        axis = "right" if query.ref_id in panel.right else "left"
        one = Drawn(query.ref_id, query.promql, axis)
        try:
            result = range_query(prometheus_url, query.promql, start, end, step, timeout)
        except QueryError as exc:
            one.error = str(exc)
            drawn.append(one)
            continue
        varying = _varying(result)
        for series in sorted(result, key=lambda r: _sort_key(r["metric"])):
            labels = dict(series["metric"])
            times, values = _points(series.get("values", []))
            if not any(math.isfinite(v) for v in values):
                continue
            one.series.append({"legend": legend_for(labels, panel.legend.get(query.ref_id, ""), varying),
                               "labels": labels, "points": len(times), "first": times[0], "last": times[-1],
                               "times": times, "values": values})
        drawn.append(one)
    return drawn


# ---- drawing -------------------------------------------------------------------------------------------
def _clock(seconds: float) -> str:
    sign = "-" if seconds < 0 else "+"
    seconds = abs(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{sign}{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{sign}{rest // 60:02d}:{rest % 60:02d}"


def _tick_every(span: float) -> float:
    return next((s for s in (15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 43200, 86400)
                 if span / s <= 12), 86400 * math.ceil(span / 86400 / 12))


def _node(labels: Mapping[str, str]) -> str:
    return labels.get("node") or labels.get("instance", "")


def _plain(value: float, _: Any = None) -> str:
    """A count: 0.5, 12, 3.4k, 2M (no milli-rooms)."""
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g}{suffix}"
    return f"{value:.3g}"


def _formatter(unit: str) -> Any:
    from matplotlib.ticker import EngFormatter, FuncFormatter, PercentFormatter

    kind, suffix = UNITS.get(unit, ("", "eng", unit))[1:]
    if kind == "percent1":
        return PercentFormatter(xmax=1.0, decimals=None)
    if kind == "percent100":
        return PercentFormatter(xmax=100.0, decimals=None)
    if not suffix:
        return FuncFormatter(_plain)
    return EngFormatter(unit=suffix, places=None, sep=" ")


def _axis_label(unit: str, label: str) -> str:
    name = UNITS.get(unit, (unit,))[0]
    if label and name:
        return f"{label} ({name})"
    return label or name


def _with_gaps(times: list[float], values: list[float], step: float) -> tuple[list[float], list[float]]:
    """Insert a NaN where samples are missing, so the line breaks instead of bridging the gap."""
    xs, ys = [], []
    for i, (t, v) in enumerate(zip(times, values, strict=True)):
        if i and t - times[i - 1] > 1.5 * step:
            xs.append((t + times[i - 1]) / 2)
            ys.append(math.nan)
        xs.append(t)
        ys.append(v)
    return xs, ys


def _phase_groups(marks: Sequence[dict[str, Any]], span: float) -> list[tuple[float, str]]:
    """Phases closer than 2 % of the range share one mark and one label."""
    groups: list[tuple[float, list[str]]] = []
    for mark in sorted(marks, key=lambda m: m["time"]):
        if groups and mark["time"] - groups[-1][0] < 0.02 * span:
            groups[-1][1].append(mark["phase"])
        else:
            groups.append((mark["time"], [mark["phase"]]))
    return [(t, " / ".join(names)) for t, names in groups]


def draw_panel(path: Path, panel: Panel, drawn: Sequence[Drawn], *, start: float, end: float, t0: float,
               step: float, alerts: Sequence[AlertIntervals], phase_marks: Sequence[dict[str, Any]],
               alert_colors: Mapping[str, str], subtitle: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter, MaxNLocator, MultipleLocator

    figure = Figure(figsize=(12, 4.6), dpi=100, layout="constrained")
    left = figure.add_subplot()
    right = left.twinx() if any(d.axis == "right" for d in drawn) else None
    left.set_title(f"{panel.dashboard_title} · {panel.title}", fontsize=12.5, fontweight="bold", loc="left")

    # One color per node (or instance) when the panel shows several, else one per series; the linestyle
    # tells a node's series apart: solid, dotted, dash-dot on the left axis, dashed on the right one.
    nodes = sorted({_node(s["labels"]) for d in drawn for s in d.series})
    by_node = len(nodes) > 1
    color_of = {name: SERIES_COLORS[i % len(SERIES_COLORS)] for i, name in enumerate(nodes)}
    seen: dict[tuple[str, str], int] = {}
    handles: list[Any] = []
    hidden = 0
    labelled = _labelled(drawn)
    for one in drawn:
        axes = right if one.axis == "right" and right is not None else left
        styles = RIGHT_LINESTYLES if axes is right else LINESTYLES
        for series in one.series:
            key = (one.axis, _node(series["labels"]) if by_node else "")
            occurrence = seen[key] = seen.get(key, -1) + 1
            color = color_of[key[1]] if by_node else SERIES_COLORS[sum(seen.values()) % len(SERIES_COLORS)]
            xs, ys = _with_gaps([t - t0 for t in series["times"]], series["values"], step)
            series["in_legend"] = id(series) in labelled
            (line,) = axes.plot(xs, ys, color=color, linestyle=styles[occurrence % len(styles) if by_node else 0],
                                linewidth=1.6 if series["in_legend"] else 0.7, alpha=1 if series["in_legend"] else 0.5,
                                label=series["legend"] + (" (right axis)" if axes is right else ""))
            if series["in_legend"]:
                handles.append(line)
            else:
                hidden += 1

    for axes, unit, label in ((left, panel.unit, panel.axis_label),
                              (right, *(next(iter(panel.right.values())) if panel.right else ("short", "")))):
        if axes is None:
            continue
        values = [v for line in axes.get_lines() for v in line.get_ydata() if math.isfinite(v)]
        axes.yaxis.set_major_formatter(_formatter(unit))
        if values and all(float(v).is_integer() for v in values):
            axes.yaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_ylabel(_axis_label(unit, label))
        if not values:
            axes.set_ylim(0, 1)
        elif min(values) >= 0:
            axes.set_ylim(bottom=0, top=max(values) * 1.08 or 1)

    shaded = []
    for alert in alerts:
        color = alert_colors[alert.key]
        for begin, finish in alert.intervals:
            if finish < start or begin > end:
                continue
            left.axvspan(max(begin, start) - t0, max(min(finish, end), begin + step / 2) - t0, color=color,
                         alpha=0.18, linewidth=0, zorder=0)
            shaded.append(alert.key)
    for key in dict.fromkeys(shaded):
        handles.append(Patch(facecolor=alert_colors[key], alpha=0.35, label=f"firing: {key}"))

    for at, label in _phase_groups([m for m in phase_marks if start <= m["time"] <= end], end - start):
        left.axvline(at - t0, color="#444444", linestyle=(0, (4, 3)), linewidth=0.9, zorder=1.8)
        left.text(at - t0, 0.985, label, transform=left.get_xaxis_transform(), rotation=90, va="top",
                  ha="left", fontsize=8, color="#222222", zorder=5,
                  bbox={"facecolor": "white", "alpha": 0.75, "edgecolor": "none", "pad": 1.5})
    if phase_marks:
        handles.append(Line2D([], [], color="#444444", linestyle=(0, (4, 3)), linewidth=0.9, label="scenario phase"))

    errors = [f"{d.ref_id}: query error: {d.error}" for d in drawn if d.error]
    if errors:
        left.text(0.5, 0.5, "\n".join(_wrap(e, 110) for e in errors), transform=left.transAxes, ha="center",
                  va="center", fontsize=9, color="#b00020", wrap=True,
                  bbox={"facecolor": "white", "edgecolor": "#b00020", "alpha": 0.9})
    elif not any(d.series for d in drawn):
        left.text(0.5, 0.5, "no data", transform=left.transAxes, ha="center", va="center", fontsize=16,
                  color="#888888")

    left.set_xlim(start - t0, end - t0)
    left.xaxis.set_major_locator(MultipleLocator(_tick_every(end - start)))
    left.xaxis.set_major_formatter(FuncFormatter(lambda x, _: _clock(x)))
    left.grid(True, color="#dddddd", linewidth=0.6)
    left.set_xlabel(f"time since {datetime.fromtimestamp(t0).strftime('%Y-%m-%d %H:%M:%S')} (mm:ss, local time)")
    figure.text(0.005, 0.005, subtitle, fontsize=7.5, color="#666666", ha="left", va="bottom")
    if hidden:
        handles.insert(len(labelled), Line2D([], [], color="#999999", linewidth=0.7,
                                             label=f"{hidden} lower series (thin, not listed)"))
    if handles:
        figure.legend(handles=handles, loc="outside right upper", fontsize=8, frameon=False)
    figure.savefig(path)


def _labelled(drawn: Sequence[Drawn]) -> set[int]:
    """ids of the series named in the legend: all of them, or when there are more than ``MAX_LEGEND``,
    each query's highest (by peak value), an equal share per query."""
    queries = [d for d in drawn if d.series]
    if sum(len(d.series) for d in queries) <= MAX_LEGEND:
        return {id(s) for d in queries for s in d.series}
    share = max(1, MAX_LEGEND // len(queries))
    chosen = set()
    for one in queries:
        ranked = sorted(one.series, key=lambda s: max((v for v in s["values"] if math.isfinite(v)), default=0),
                        reverse=True)
        chosen |= {id(s) for s in ranked[:share]}
    return chosen


def _wrap(text: str, width: int) -> str:
    return "\n".join(text[i:i + width] for i in range(0, len(text), width))


# ---- the report ----------------------------------------------------------------------------------------
@dataclass
class Report:
    out_dir: Path
    index: Path  # index.html
    data: dict[str, Any]  # what report.json holds

    @property
    def pngs(self) -> list[Path]:
        return [self.out_dir / p["file"] for p in self.data["panels"]]


def render_report(prometheus_url: str, out_dir: Path, *, start: float, end: float,
                  result: Mapping[str, Any] | None = None, step: float | None = None,
                  dashboards_dir: Path = DASHBOARDS_DIR, timeout: float = 30.0) -> Report:
    """Draw every panel of ``dashboards_dir`` over [start, end] (unix seconds) into ``out_dir``.

    ``result`` (a scenario result JSON) adds its phases, its start as time zero, and its alert spans
    when Prometheus has no ALERTS series in the range. Raises ``PrometheusUnreachable``.
    """
    if end <= start:
        raise ReportError(f"empty time range: start {start} is not before end {end}")
    check_prometheus(prometheus_url, min(timeout, 5.0))
    step = step or choose_step(start, end)
    t0 = float(result["started_at"]) if result else start
    all_panels = dashboard_panels(dashboards_dir)

    try:
        alerts, alerts_source, alerts_error = firing_alerts(prometheus_url, start, end, timeout), "prometheus", None
    except QueryError as exc:
        alerts, alerts_source, alerts_error = [], "prometheus", str(exc)
    if not alerts and result and result.get("alerts"):
        alerts, alerts_source = [a for a in result_alerts(result, end)
                                 if any(b <= end and e >= start for b, e in a.intervals)], "result"
    alert_colors = {a.key: ALERT_COLORS[i % len(ALERT_COLORS)] for i, a in enumerate(alerts)}
    marks = phases(result)

    with ThreadPoolExecutor(max_workers=4) as pool:
        drawn_all = list(pool.map(lambda p: run_panel(prometheus_url, p, start, end, step, timeout), all_panels))

    out_dir.mkdir(parents=True, exist_ok=True)
    what = f"{result['scenario']} (size {result.get('size')})" if result else "time range"
    subtitle = f"{what} · step {step:g} s · {prometheus_url}"
    entries = []
    for panel, drawn in zip(all_panels, drawn_all, strict=True):
        draw_panel(out_dir / panel.file_name, panel, drawn, start=start, end=end, t0=t0, step=step, alerts=alerts,
                   phase_marks=marks, alert_colors=alert_colors, subtitle=subtitle)
        entries.append({
            "dashboard": panel.dashboard, "title": panel.title, "type": panel.type, "file": panel.file_name,
            "unit": panel.unit, "right_unit": next(iter(panel.right.values()))[0] if panel.right else None,
            "no_data": not any(d.series for d in drawn),
            "queries": [{"ref_id": d.ref_id, "promql": d.promql, "axis": d.axis, "error": d.error,
                         "series": [{k: s[k] for k in ("legend", "labels", "points", "first", "last", "in_legend")}
                                    for s in d.series]} for d in drawn],
            "shaded": {a.key: [[max(b, start), min(e, end)] for b, e in a.intervals if e >= start and b <= end]
                       for a in alerts},
        })
    data = {
        "prometheus": prometheus_url, "start": start, "end": end, "step": step, "t0": t0,
        "scenario": dict(result) if result else None,
        "alerts_source": alerts_source, "alerts_error": alerts_error,
        "alerts": [{"alertname": a.alertname, "target": a.target, "key": a.key, "labels": a.labels,
                    "intervals": [list(i) for i in a.intervals]} for a in alerts],
        "phases": marks, "panels": entries,
    }
    (out_dir / "report.json").write_text(json.dumps(data, indent=1))
    index = out_dir / "index.html"
    index.write_text(render_html(data, all_panels))
    return Report(out_dir, index, data)


def timeline(data: Mapping[str, Any]) -> list[tuple[float, str]]:
    """(unix time, event) of the phases, the alerts firing and resolving, and the scenario's end."""
    events = [(p["time"], f"phase {p['phase']}" + "".join(
        f", {k}={v}" for k, v in p.items() if k not in ("phase", "at", "time"))) for p in data["phases"]]
    for alert in data["alerts"]:
        for begin, finish in alert["intervals"]:
            events.append((begin, f"{alert['key']} firing"))
            if finish < data["end"] - data["step"]:
                events.append((finish, f"{alert['key']} resolved (last seen firing)"
                               if data["alerts_source"] == "prometheus" else f"{alert['key']} resolved"))
    scenario = data.get("scenario")
    if scenario and scenario.get("ended_at"):
        events.append((float(scenario["ended_at"]), "scenario ends"))
    return sorted(events)


def chain_table(chain: Sequence[Mapping[str, Any]], node: str) -> list[str]:
    """The incident's chain on the hot node, one row per recorded step (``facts["hot_node_chain"]``)."""
    columns = [key for key in ("link_sent_kbit_per_s", "link_drops_per_s", "nacks_per_s", "retransmissions_per_s")
               if any(key in row for row in chain)]
    lines = [f"<h2>The chain on {html.escape(node)}: link, drops, NACKs, retransmissions</h2>",
             "<table><tr><th>at</th>" + "".join(f"<th>{html.escape(c.replace('_', ' '))}</th>" for c in columns)
             + "</tr>"]
    lines += ["<tr><td>" + _clock(float(row["at"])) + "</td>"
              + "".join(f"<td>{row.get(c, '')}</td>" for c in columns) + "</tr>" for row in chain]
    return [*lines, "</table>"]


def render_html(data: Mapping[str, Any], all_panels: Sequence[Panel]) -> str:
    e = html.escape
    t0 = data["t0"]
    scenario = data.get("scenario")

    def when(t: float) -> str:
        return f"{_clock(t - t0)}</td><td>{datetime.fromtimestamp(t).strftime('%H:%M:%S')}"

    head = f"Incident report: {scenario['scenario']}" if scenario else "Incident report"
    lines = [
        "<!doctype html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{e(head)}</title>",
        "<style>body{font-family:sans-serif;max-width:1240px;margin:1em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}"
        "img{max-width:100%;border:1px solid #ddd}pre{background:#f6f6f6;padding:6px;white-space:pre-wrap}"
        ".error{color:#b00020}.nodata{color:#888}</style></head><body>",
        f"<h1>{e(head)}</h1>", "<p>",
    ]
    if scenario:
        verdict = "passed" if scenario.get("ok") else f"failed: {scenario.get('error')}"
        lines.append(f"Scenario <b>{e(str(scenario['scenario']))}</b>, size {e(str(scenario.get('size')))}, "
                     f"{e(verdict)}.<br>")
    lines.append(f"From {datetime.fromtimestamp(data['start']):%Y-%m-%d %H:%M:%S} to "
                 f"{datetime.fromtimestamp(data['end']):%Y-%m-%d %H:%M:%S} (local time), step {data['step']:g} s, "
                 f"Prometheus {e(data['prometheus'])}. Alert intervals from "
                 f"{'Prometheus ALERTS' if data['alerts_source'] == 'prometheus' else 'the scenario result'}"
                 f"{e(' (ALERTS query failed: ' + data['alerts_error'] + ')') if data['alerts_error'] else ''}."
                 "</p>")
    lines += ["<h2>Timeline</h2>", "<table><tr><th>since start</th><th>time</th><th>event</th></tr>"]
    events = timeline(data)
    lines += [f"<tr><td>{when(t)}</td><td>{e(text)}</td></tr>" for t, text in events]
    if not events:
        lines.append('<tr><td colspan="3">no phases and no alerts in this range</td></tr>')
    lines.append("</table>")
    if scenario and scenario.get("facts"):
        facts = dict(scenario["facts"])
        chain = facts.pop("hot_node_chain", None)
        lines += ["<h2>Scenario facts</h2>", "<table>"]
        lines += [f"<tr><th>{e(str(k))}</th><td>{e(v if isinstance(v, str) else json.dumps(v))}</td></tr>"
                  for k, v in facts.items()]
        lines.append("</table>")
        if chain:
            lines += chain_table(chain, facts.get("mega_room_node") or "the hot node")
    if data["alerts"]:
        lines += ["<h2>Alerts</h2>", "<table><tr><th>alert</th><th>target</th><th>severity</th><th>firing from</th>"
                  "<th>until</th><th>for</th></tr>"]
        for alert in data["alerts"]:
            for begin, finish in alert["intervals"]:
                lines.append(f"<tr><td>{e(alert['alertname'])}</td><td>{e(alert['target'])}</td>"
                             f"<td>{e(alert['labels'].get('severity', ''))}</td><td>{_clock(begin - t0)}</td>"
                             f"<td>{_clock(finish - t0)}</td><td>{_clock(finish - begin)[1:]}</td></tr>")
        lines.append("</table>")
    by_file = {p["file"]: p for p in data["panels"]}
    dashboard = None
    lines.append("<h2>Panels</h2><ul>")
    lines += [f'<li><a href="#{e(p.file_name[:-4])}">{e(p.dashboard_title)} · {e(p.title)}</a></li>'
              for p in all_panels]
    lines.append("</ul>")
    for panel in all_panels:
        entry = by_file[panel.file_name]
        if panel.dashboard != dashboard:
            dashboard = panel.dashboard
            lines.append(f"<h2>{e(panel.dashboard_title)} <small>({e(panel.dashboard)})</small></h2>")
        lines.append(f'<h3 id="{e(panel.file_name[:-4])}">{e(panel.title)}</h3>')
        lines.append(f'<img src="{e(panel.file_name)}" alt="{e(panel.title)}" loading="lazy">')
        if entry["no_data"]:
            lines.append('<p class="nodata">no data in this range</p>')
        lines.append("<pre>")
        for query in entry["queries"]:
            legend = panel.legend.get(query["ref_id"], "")
            extra = f"   # legend {legend}" if legend else ""
            extra += "   # right axis" if query["axis"] == "right" else ""
            lines.append(f"{e(query['ref_id'])}: {e(query['promql'])}{e(extra)}")
            if query["error"]:
                lines.append(f'<span class="error">   query error: {e(query["error"])}</span>')
            else:
                lines.append(f"   {len(query['series'])} series with data")
        lines.append("</pre>")
    lines.append("</body></html>")
    return "\n".join(lines) + "\n"


# ---- command line --------------------------------------------------------------------------------------
_RELATIVE = re.compile(r"^-?(\d+(?:\.\d+)?)([smhd])(?: ago)?$")


def parse_time(text: str, now: float | None = None) -> float:
    """Unix seconds, ``now``, a time before now (``30m``, ``-30m``, ``90s``, ``2h ago``, ``1d``; units s m h d),
    or ISO 8601 (local time when it has no offset). On a command line, ``--start=-30m`` or ``--start 30m``."""
    now = time.time() if now is None else now
    text = text.strip()
    if text == "now":
        return now
    match = _RELATIVE.match(text)
    if match:
        return now - float(match.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a time: {text!r} (unix seconds, now, 30m or -30m before now, "
                                         "or ISO 8601)") \
            from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prometheus", default=NATIVE_PROMETHEUS,
                        help=f"Prometheus URL (default: lab up's, %(default)s; Compose: {COMPOSE_PROMETHEUS})")
    parser.add_argument("--result", type=Path, default=None,
                        help="scenario result JSON: its run is the range, its phases are marked "
                             "(default: LAB_HOME/scenarios/last.json unless --start/--end are given)")
    parser.add_argument("--start", default=None,
                        help="unix seconds, a time before now (30m, 2h; or --start=-30m), ISO 8601 "
                             f"(default: the run's start minus {MARGIN:g} s)")
    parser.add_argument("--end", default=None, help=f"same forms (default: the run's end plus {MARGIN:g} s, or now)")
    parser.add_argument("--step", type=float, default=None,
                        help=f"range query step in seconds (default: at most {MAX_POINTS} points per series)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: LAB_HOME/reports/<scenario>-<start time>/)")
    parser.add_argument("--dashboards", type=Path, default=DASHBOARDS_DIR,
                        help="folder of Grafana dashboard JSON files (default: the repository's grafana/dashboards)")


def command(args: argparse.Namespace, now: float | None = None) -> int:
    """``lab report``: make the report from parsed ``add_arguments`` options; 0 written, 1 failed."""
    now = time.time() if now is None else now
    result = None
    path = args.result or (lab_home() / "scenarios" / "last.json" if args.start is None and args.end is None
                           else None)
    if path is not None:
        try:
            result = json.loads(Path(path).read_text())
            float(result["started_at"]), float(result["ended_at"])  # noqa: B018 - validate early
        except FileNotFoundError:
            if args.result is not None:
                print(f"lab report: no scenario result at {path}", file=sys.stderr)
                return 1
            print(f"lab report: no scenario result at {path} (run `lab scenario incident`); "
                  "reporting the last 30 minutes", file=sys.stderr)
        except (ValueError, KeyError, TypeError) as exc:
            print(f"lab report: {path} is not a scenario result: {exc}", file=sys.stderr)
            return 1
    try:
        start = parse_time(args.start, now) if args.start else \
            (float(result["started_at"]) - MARGIN if result else now - 1800)
        end = parse_time(args.end, now) if args.end else (float(result["ended_at"]) + MARGIN if result else now)
    except argparse.ArgumentTypeError as exc:
        print(f"lab report: {exc}", file=sys.stderr)
        return 1
    name = result["scenario"] if result else "range"
    out = args.out or lab_home() / "reports" / \
        f"{name}-{time.strftime('%Y%m%d-%H%M%S', time.localtime(result['started_at'] if result else start))}"
    begun = time.monotonic()
    try:
        report = render_report(args.prometheus, out, start=start, end=end, result=result, step=args.step,
                               dashboards_dir=args.dashboards)
    except ReportError as exc:
        print(f"lab report: {exc}", file=sys.stderr)
        if isinstance(exc, PrometheusUnreachable):
            print("  is the stack up? `lab status` (native) or `docker compose ps`; Compose: --prometheus "
                  f"{COMPOSE_PROMETHEUS}", file=sys.stderr)
        return 1
    data = report.data
    empty = [p["title"] for p in data["panels"] if p["no_data"]]
    failed = [p["title"] for p in data["panels"] if any(q["error"] for q in p["queries"])]
    print(f"{len(data['panels'])} panels ({len(empty)} without data, {len(failed)} with query errors), "
          f"{sum(len(a['intervals']) for a in data['alerts'])} alert intervals from {data['alerts_source']}, "
          f"{len(data['phases'])} phases, in {time.monotonic() - begun:.1f} s")
    for title in failed:
        print(f"  query error in: {title}")
    print(f"report: {report.index}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.report", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return command(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
