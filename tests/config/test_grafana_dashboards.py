"""Grafana provisioning and dashboards, read as files: Grafana itself cannot run here."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from promql_names import REPO, metric_names, unknown_metrics

from lab.dashboards import load_dashboards, panel_queries, panels, substitute, variable_queries

GRAFANA = REPO / "grafana"
DASHBOARDS = {"sfu-health.json": ("sfu-health", "SFU Health"), "sfu-node.json": ("sfu-node", "SFU Node")}
DATASOURCE_UIDS = {"prometheus", "alertmanager", "-- Grafana --"}
RANGE_VARIABLES = {"$__rate_interval", "${__rate_interval}", "$__range", "${__range}"}
REQUIRED_PANELS = {
    "sfu-health": ["Symptom: auth failures vs active rooms", "Cause: CPU (left) vs egress bitrate (right) per SFU node",
                   "NACK rate vs CPU per SFU node", "p95 signaling join and ICE negotiation time",
                   "SFU saturation index", "Bitrate per user", "Rooms and handles per SFU node", "Largest room",
                   "Firing alerts"],
    "sfu-node": ["CPU (left) vs egress bitrate (right)", "NACK rate vs CPU", "SFU saturation index",
                 "Bitrate per handle", "Rooms, handles and PeerConnections", "Largest room", "Firing alerts"],
}
DASHBOARD_ITEMS = list(load_dashboards().items())


def datasource_refs(node: Any) -> list[Any]:
    """Every value of a ``datasource`` key anywhere in the JSON."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource":
                found.append(value)
            found.extend(datasource_refs(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(datasource_refs(value))
    return found


def test_the_dashboards_folder_holds_exactly_the_two_dashboards_with_fixed_uids_and_titles():
    dashboards = load_dashboards()
    assert {name: (d["uid"], d["title"]) for name, d in dashboards.items()} == DASHBOARDS


@pytest.mark.parametrize(("name", "dashboard"), DASHBOARD_ITEMS, ids=[n for n, _ in DASHBOARD_ITEMS])
def test_every_datasource_reference_is_a_pinned_uid_and_no_import_variable_is_left(name, dashboard):
    assert "${DS_" not in (GRAFANA / "dashboards" / name).read_text()
    assert "__inputs" not in dashboard
    refs = datasource_refs(dashboard)
    assert refs
    for ref in refs:
        assert isinstance(ref, dict) and ref.get("uid") in DATASOURCE_UIDS, ref


@pytest.mark.parametrize(("name", "dashboard"), DASHBOARD_ITEMS, ids=[n for n, _ in DASHBOARD_ITEMS])
def test_every_panel_has_a_unit_a_description_and_at_least_one_query(name, dashboard):
    for panel in panels(dashboard):
        title = panel["title"]
        defaults = panel["fieldConfig"]["defaults"]
        assert defaults.get("unit"), f"{title}: no unit"
        for override in panel["fieldConfig"].get("overrides", []):
            for prop in override["properties"]:
                if prop["id"] == "unit":
                    assert prop["value"], f"{title}: an override without a unit"
        assert panel.get("description"), f"{title}: no description"
        targets = [t for t in panel.get("targets", []) if t.get("expr", "").strip()]
        assert targets, f"{title}: no query"
        assert len({t["refId"] for t in targets}) == len(targets), f"{title}: refIds repeat"


@pytest.mark.parametrize(("name", "dashboard"), DASHBOARD_ITEMS, ids=[n for n, _ in DASHBOARD_ITEMS])
def test_panel_ids_are_unique_and_panels_do_not_overlap(name, dashboard):
    every = list(dashboard["panels"])
    ids = [p["id"] for p in every]
    assert len(ids) == len(set(ids))
    cells: dict[tuple[int, int], str] = {}
    for panel in every:
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24, panel["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


@pytest.mark.parametrize(("uid", "titles"), REQUIRED_PANELS.items())
def test_the_dashboard_has_the_articles_panels(uid, titles):
    dashboard = next(d for d in load_dashboards().values() if d["uid"] == uid)
    assert [t for t in titles if t not in {p["title"] for p in panels(dashboard)}] == []


def test_cause_panels_put_cpu_on_the_left_axis_and_bitrate_on_the_right():
    for dashboard in load_dashboards().values():
        for panel in panels(dashboard):
            if panel["title"].startswith(("Cause", "CPU (left)")):
                assert panel["fieldConfig"]["defaults"]["unit"] == "percentunit"
                (override,) = panel["fieldConfig"]["overrides"]
                props = {p["id"]: p["value"] for p in override["properties"]}
                assert props == {"unit": "bps", "custom.axisPlacement": "right", "custom.axisLabel": "egress"}


def test_every_range_in_a_query_is_grafanas_rate_interval_or_the_dashboard_range():
    for query in panel_queries():
        for window in re.findall(r"\[([^\]]*)\]", query.expr):
            assert window in RANGE_VARIABLES, f"{query.dashboard} / {query.panel}: [{window}]"
        if re.search(r"\b(?:rate|irate)\s*\(", query.expr):
            assert "__rate_interval" in query.expr, f"{query.dashboard} / {query.panel}"


def test_the_node_dashboard_has_region_and_node_variables_that_every_sfu_query_follows():
    dashboard = next(d for d in load_dashboards().values() if d["uid"] == "sfu-node")
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert list(variables) == ["region", "node"]
    assert "$region" in variables["node"]["query"]["query"]
    assert [(v.variable, v.label, v.promql) for v in variable_queries()] == [
        ("region", "region", 'up{job="sfu_nodes"}'), ("node", "node", 'up{job="sfu_nodes", region=~".*"}')]
    for v in variable_queries():
        assert unknown_metrics(metric_names(v.promql)) == set()
    for query in panel_queries():
        if query.dashboard == "sfu-node":
            assert "$node" in query.expr, f"{query.panel}: ignores the node variable"


def test_every_metric_a_panel_reads_is_documented_recorded_or_standard():
    problems = {f"{q.dashboard} / {q.panel} / {q.ref_id}": sorted(unknown_metrics(metric_names(q.expr)))
                for q in panel_queries()}
    assert {k: v for k, v in problems.items() if v} == {}


def test_promtool_parses_every_panel_query_once_grafanas_variables_are_replaced(tmp_path):
    rules = [{"record": f"dashboard:query_{i}:check", "expr": q.promql} for i, q in enumerate(panel_queries())]
    path = tmp_path / "dashboard_queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard-queries", "rules": rules}]}))
    run = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_query_helper_replaces_builtins_and_template_variables_and_refuses_unknown_ones():
    assert substitute('rate(x{node=~"$node"}[$__rate_interval])', {"node": ".*"}) == 'rate(x{node=~".*"}[1m])'
    assert substitute('x{a=~"${node:regex}", b="[[region]]"}', {"node": ".*", "region": ".*"}) == 'x{a=~".*", b=".*"}'
    assert substitute("increase(x[$__range])", {}, {"__range": "5m"}) == "increase(x[5m])"
    with pytest.raises(KeyError, match="nope"):
        substitute("x{a=~\"$nope\"}", {})
    queries = panel_queries()
    assert len(queries) >= 30 and all("$" not in q.promql for q in queries)


def test_datasources_are_provisioned_with_pinned_uids():
    document = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "datasources.yml").read_text())
    by_uid = {d["uid"]: d for d in document["datasources"]}
    assert by_uid["prometheus"]["type"] == "prometheus" and by_uid["prometheus"]["isDefault"] is True
    assert by_uid["prometheus"]["url"] == "http://prometheus:9090"
    assert by_uid["prometheus"]["jsonData"]["timeInterval"] == "15s"
    assert by_uid["alertmanager"]["type"] == "alertmanager"
    assert by_uid["alertmanager"]["url"] == "http://alertmanager:9093"


def test_dashboards_are_provisioned_from_files_into_one_folder():
    document = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "dashboards.yml").read_text())
    (provider,) = document["providers"]
    assert provider["type"] == "file" and provider["folder"] == "SFU Observability Lab"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    assert all(json.loads(p.read_text()) for p in Path(GRAFANA / "dashboards").glob("*.json"))
