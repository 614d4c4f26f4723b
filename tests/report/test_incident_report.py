"""``lab report`` over a backfilled synthetic incident: a PNG per panel, the hot node's data, alerts shaded."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from synthetic_incident import ALERT_WINDOWS, HOT, NODES, PHASES, Incident

from lab.dashboards import panel_queries
from lab.report import Report, dashboard_panels, render_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def report(incident: Incident, tmp_path_factory: pytest.TempPathFactory) -> Report:
    begun = time.monotonic()
    made = render_report(incident.url, tmp_path_factory.mktemp("report"), start=incident.at(-60),
                         end=incident.at(1210), result=incident.result)
    print(f"render_report: {time.monotonic() - begun:.1f} s for {len(made.data['panels'])} panels")
    return made


def series_of(report: Report, title: str, dashboard: str) -> list[dict]:
    panel = next(p for p in report.data["panels"] if p["title"] == title and p["dashboard"] == dashboard)
    return [s for q in panel["queries"] for s in q["series"]]


def test_every_panel_of_every_dashboard_gets_one_valid_png(report: Report) -> None:
    wanted = {(q.dashboard, q.panel) for q in panel_queries()}
    drawn = {(p["dashboard"], p["title"]) for p in report.data["panels"]}
    assert drawn == wanted
    assert len({p["file"] for p in report.data["panels"]}) == len(wanted), "two panels share a file name"
    for png in report.pngs:
        head = png.read_bytes()[:24]
        assert head.startswith(PNG_SIGNATURE), png
        width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
        assert width >= 1000 and height >= 400, (png, width, height)


def test_every_query_runs_and_every_panel_has_data_for_the_hot_node_where_it_shows_nodes(report: Report) -> None:
    for panel in report.data["panels"]:
        where = f"{panel['dashboard']} / {panel['title']}"
        assert not [q["error"] for q in panel["queries"] if q["error"]], where
        assert not panel["no_data"], where
        series = [s for q in panel["queries"] for s in q["series"]]
        nodes = {s["labels"]["node"] for s in series if "node" in s["labels"]}
        if nodes:
            assert HOT in nodes, where
            assert all(s["points"] > 100 for s in series if s["labels"].get("node") == HOT), where


def test_the_cpu_and_nack_panels_draw_one_line_per_node_with_the_panels_legends(report: Report) -> None:
    cpu = series_of(report, "Cause: CPU (left) vs egress bitrate (right) per SFU node", "sfu-health")
    assert {s["legend"] for s in cpu} == {f"{n} CPU" for n in NODES} | {f"{n} egress" for n in NODES}
    nacks = series_of(report, "NACK rate vs CPU", "sfu-node")
    assert {s["legend"] for s in nacks} >= {f"{HOT} NACKs sent", f"{HOT} NACKs received", f"{HOT} CPU"}
    panel = next(p for p in report.data["panels"] if p["title"] == "NACK rate vs CPU")
    assert [(q["ref_id"], q["axis"]) for q in panel["queries"]] == [("A", "left"), ("B", "right")]
    assert (panel["unit"], panel["right_unit"]) == ("pps", "percentunit")


def test_sfuhighcpu_is_shaded_on_every_plot_exactly_where_prometheus_had_it_firing(
        report: Report, incident: Incident) -> None:
    step = report.data["step"]
    assert report.data["alerts_source"] == "prometheus"
    for alertname, (_, fired, resolved) in ALERT_WINDOWS.items():
        key = f"{alertname} {HOT}"
        for panel in report.data["panels"]:
            [(begin, end)] = panel["shaded"][key]
            assert abs(begin - incident.at(fired)) <= step, (panel["title"], begin - incident.start)
            assert abs(end - incident.at(resolved)) <= step, (panel["title"], end - incident.start)
    assert {a["key"] for a in report.data["alerts"]} == {f"{a} {HOT}" for a in ALERT_WINDOWS}, "pending is not firing"


def test_the_html_page_shows_every_panel_with_its_queries_and_the_timeline_of_phases_and_alerts(
        report: Report) -> None:
    page = report.index.read_text()
    for panel in dashboard_panels():
        assert f'src="{panel.file_name}"' in page
        assert panel.title.replace("&", "&amp;") in page
        for query in panel.queries:
            assert query.promql.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;") \
                .replace(">", "&gt;").replace("'", "&#x27;") in page
    timeline = page.split("<h2>Timeline</h2>")[1].split("</table>")[0]
    for at, name, _ in PHASES:
        assert f"phase {name}" in timeline and f"+{at // 60:02d}:{at % 60:02d}" in timeline
    assert f"SFUHighCPU {HOT} firing" in timeline and "+08:00" in timeline
    assert f"<tr><th>mega_room_node</th><td>{HOT}</td></tr>" in page
    chain = page.split(f"<h2>The chain on {HOT}: link, drops, NACKs, retransmissions</h2>")[1].split("</table>")[0]
    assert "<th>link drops per s</th>" in chain
    assert "<tr><td>+05:00</td><td>550.4</td><td>40.0</td><td>31.0</td></tr>" in chain
    assert "hot_node_chain" not in page, "the chain is its own table, not a fact"
    assert "<script" not in page
    assert json.loads((report.out_dir / "report.json").read_text())["panels"] == report.data["panels"]


def test_a_plot_is_readable_title_units_and_legend_included(report: Report) -> None:
    from matplotlib.image import imread

    png = report.out_dir / "sfu-health--cause-cpu-left-vs-egress-bitrate-right-per-sfu-node.png"
    pixels = imread(png)
    assert pixels.shape[0] >= 400 and pixels.shape[1] >= 1000
    assert pixels[..., :3].std() > 0.05, "the plot is not blank"
    assert Path(png).stat().st_size > 20_000
