"""``lab report``'s failure modes and options: query errors and empty panels drawn, not raised; a Prometheus
that does not answer is exit 1 with a clear message; the default range is the scenario run's."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from synthetic_incident import HOT, Incident

from lab.report import add_arguments, command, evaluation_intervals, intervals_from_samples, parse_time, render_report
from lab.stack import free_port

BROKEN = {
    "uid": "broken", "title": "Broken", "templating": {"list": []},
    "panels": [
        {"type": "timeseries", "title": "Bad query", "fieldConfig": {"defaults": {"unit": "pps"}},
         "targets": [{"refId": "A", "expr": "rate(sfu_nacks_total[", "legendFormat": "{{node}}"}]},
        {"type": "timeseries", "title": "Nothing here", "targets": [{"refId": "A", "expr": "no_such_metric"}]},
        {"type": "row", "title": "A row", "panels": [
            {"type": "timeseries", "title": "Half broken", "fieldConfig": {"defaults": {"unit": "pps"}},
             "targets": [{"refId": "A", "expr": "instance:sfu_nacks:rate1m", "legendFormat": "{{node}}"},
                         {"refId": "B", "expr": "sum by (node) (", "legendFormat": "{{node}}"}]}]},
        {"type": "text", "title": "Notes"},
        {"type": "timeseries", "title": "Nothing here", "targets": [{"refId": "A", "expr": "vector(1)"}]},
    ],
}


@pytest.fixture
def broken_dashboards(tmp_path: Path) -> Path:
    folder = tmp_path / "dashboards"
    folder.mkdir()
    (folder / "broken.json").write_text(json.dumps(BROKEN))
    return folder


def options(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_a_query_error_is_written_into_its_panel_and_a_panel_without_data_says_so(
        incident: Incident, broken_dashboards: Path, tmp_path: Path) -> None:
    report = render_report(incident.url, tmp_path / "out", start=incident.at(0), end=incident.at(600),
                           dashboards_dir=broken_dashboards)
    panels = {p["file"]: p for p in report.data["panels"]}
    assert list(panels) == ["broken--bad-query.png", "broken--nothing-here.png", "broken--half-broken.png",
                            "broken--nothing-here-2.png"], "one file per panel with targets, a text panel has none"
    assert "parse error" in panels["broken--bad-query.png"]["queries"][0]["error"]
    empty = panels["broken--nothing-here.png"]
    assert empty["no_data"] and empty["queries"][0]["error"] is None
    good, bad = panels["broken--half-broken.png"]["queries"]
    assert HOT in {s["labels"]["node"] for s in good["series"]} and bad["error"]
    for png in report.pngs:
        assert png.read_bytes().startswith(b"\x89PNG"), png
    page = report.index.read_text()
    assert page.count('class="error"') == 2 and "no data in this range" in page


def test_a_prometheus_that_does_not_answer_is_exit_1_with_a_clear_message(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code = command(options("--prometheus", url, "--start", "10m", "--out", str(tmp_path / "out")))
    assert code == 1
    error = capsys.readouterr().err
    assert f"no Prometheus answers at {url}" in error and "lab status" in error
    assert not (tmp_path / "out").exists()


def test_the_default_range_is_the_scenario_run_with_a_minute_either_side(
        incident: Incident, broken_dashboards: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = tmp_path / "last.json"
    result.write_text(json.dumps(incident.result))
    out = tmp_path / "report"
    code = command(options("--prometheus", incident.url, "--result", str(result), "--out", str(out),
                           "--dashboards", str(broken_dashboards)))
    assert code == 0, capsys.readouterr()
    data = json.loads((out / "report.json").read_text())
    assert (data["start"], data["end"]) == (incident.result["started_at"] - 60, incident.result["ended_at"] + 60)
    assert data["step"] == 5 and [p["phase"] for p in data["phases"]][-1] == "done"
    assert f"report: {out / 'index.html'}" in capsys.readouterr().out


def test_a_missing_result_file_named_explicitly_is_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert command(options("--result", str(tmp_path / "nope.json"))) == 1
    assert "no scenario result at" in capsys.readouterr().err


@pytest.mark.parametrize(("text", "seconds"), [
    ("now", 100_000.0), ("-30m", 100_000.0 - 1800), ("-90s", 100_000.0 - 90), ("-2h", 100_000.0 - 7200),
    ("30m", 100_000.0 - 1800), ("1d ago", 100_000.0 - 86400),
    ("1795608177.5", 1795608177.5), ("1970-01-01T00:00:10+00:00", 10.0),
])
def test_times_are_unix_seconds_relative_to_now_or_iso_8601(text: str, seconds: float) -> None:
    assert parse_time(text, now=100_000.0) == seconds


def test_a_time_that_is_none_of_those_is_refused() -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="not a time"):
        parse_time("yesterday")


def test_a_missed_evaluation_does_not_split_an_alert_interval_but_a_longer_gap_does() -> None:
    assert intervals_from_samples([0, 15, 45, 60], every=15) == [(0, 60)]
    assert intervals_from_samples([0, 15, 30, 120, 135], every=15) == [(0, 30), (120, 135)]
    assert intervals_from_samples([300, 0], every=15) == [(0, 0), (300, 300)]


def test_the_evaluation_interval_of_each_alert_comes_from_prometheus_rules(incident: Incident) -> None:
    intervals = evaluation_intervals(incident.url)
    assert intervals["SFUHighCPU"] == intervals["SFUNackStorm"] == 15.0
