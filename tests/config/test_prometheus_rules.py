"""The rules of prometheus/rules/: promtool checks and tests, and what every alert must carry."""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml
from promql_names import REPO, all_rules, metric_names, rule_documents, unknown_metrics

RULES_DIR = REPO / "prometheus" / "rules"
TESTS_DIR = REPO / "prometheus" / "tests"
RUNBOOKS = REPO / "docs" / "runbooks.md"
RUNBOOK_BASE = "https://github.com/sfu-observability-lab/sfu-observability-lab/blob/main/docs/runbooks.md"
SEVERITIES = {"critical", "warning"}
ALERTS = [rule for rule in all_rules() if "alert" in rule]
RECORDS = [rule for rule in all_rules() if "record" in rule]


def promtool_test_files() -> dict[str, dict]:
    return {path.name: yaml.safe_load(path.read_text()) for path in sorted(TESTS_DIR.glob("*.yml"))}


def alert_cases() -> dict[str, list[dict]]:
    """Alert name -> every alert_rule_test case naming it, across prometheus/tests/*.yml."""
    cases: dict[str, list[dict]] = {}
    for document in promtool_test_files().values():
        for group in document["tests"]:
            for case in group.get("alert_rule_test", []):
                cases.setdefault(case["alertname"], []).append(case)
    return cases


def test_promtool_check_rules_accepts_every_rule_file():
    files = sorted(str(p) for p in RULES_DIR.glob("*.yml"))
    run = subprocess.run(["promtool", "check", "rules", *files], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.count("SUCCESS") == len(files)


def test_promtool_unit_tests_pass_for_every_rule_group():
    files = sorted(str(p) for p in TESTS_DIR.glob("*.yml"))
    run = subprocess.run(["promtool", "test", "rules", *files], capture_output=True, text=True, timeout=120,
                         cwd=REPO)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.count("SUCCESS") == len(files), run.stdout


def test_each_rule_file_holds_one_group_and_has_its_own_test_file_loading_it():
    names = []
    for file_name, document in rule_documents().items():
        assert len(document["groups"]) == 1, file_name
        names.append(document["groups"][0]["name"])
        test_file = TESTS_DIR / file_name.replace(".yml", "_test.yml")
        assert test_file.exists(), f"{file_name} has no {test_file.name}"
        assert f"../rules/{file_name}" in yaml.safe_load(test_file.read_text())["rule_files"]
    assert len(names) == len(set(names))


def test_every_test_group_is_named_as_a_sentence():
    for file_name, document in promtool_test_files().items():
        for group in document["tests"]:
            assert len(group.get("name", "").split()) >= 5, f"{file_name}: a test group without a sentence name"


@pytest.mark.parametrize("rule", ALERTS, ids=lambda r: r["alert"])
def test_alert_has_for_severity_summary_templated_description_and_runbook_url(rule):
    assert re.fullmatch(r"\d+[smh]", str(rule.get("for", ""))), "every alert waits: `for` is required"
    assert rule["labels"]["severity"] in SEVERITIES
    annotations = rule["annotations"]
    assert annotations["summary"].strip()
    assert "{{ $labels." in annotations["description"], "the description names the node or instance"
    assert annotations["runbook_url"] == f"{RUNBOOK_BASE}#{rule['alert'].lower()}"


def test_every_alert_has_a_runbook_section_and_every_runbook_section_an_alert():
    headings = set(re.findall(r"^## (\w+)\s*$", RUNBOOKS.read_text(), re.M))
    assert headings == {rule["alert"] for rule in ALERTS}


@pytest.mark.parametrize("rule", ALERTS, ids=lambda r: r["alert"])
def test_alert_has_a_case_before_it_fires_and_one_after_with_exact_labels_and_annotations(rule):
    cases = alert_cases().get(rule["alert"], [])
    assert any(case["exp_alerts"] == [] for case in cases), "no case where it must not fire"
    fired = [alert for case in cases for alert in case["exp_alerts"]]
    assert fired, "no case where it fires"
    for alert in fired:
        assert alert["exp_labels"]["severity"] == rule["labels"]["severity"]
        assert set(alert["exp_annotations"]) == set(rule["annotations"])
        assert alert["exp_annotations"]["runbook_url"] == rule["annotations"]["runbook_url"]


def test_every_recording_rule_is_checked_by_an_expression_test():
    tested = " ".join(case["expr"] for document in promtool_test_files().values() for group in document["tests"]
                      for case in group.get("promql_expr_test", []))
    assert [r["record"] for r in RECORDS if r["record"] not in tested] == []


def test_recording_rule_names_follow_level_metric_operations():
    for rule in RECORDS:
        assert re.fullmatch(r"[a-z_]+:[a-z0-9_]+:[a-z0-9_]+", rule["record"]), rule["record"]


def test_every_metric_a_rule_reads_is_documented_recorded_or_standard():
    problems = {}
    for rule in all_rules():
        unknown = unknown_metrics(metric_names(str(rule["expr"])))
        if unknown:
            problems[rule.get("alert") or rule.get("record")] = sorted(unknown)
    assert problems == {}, "add them to docs/metrics.md or fix the name"


def test_the_metric_name_reader_skips_functions_labels_keywords_and_durations():
    expr = ('histogram_quantile(0.95, sum by (le) (rate(a_seconds_bucket{job="x", le!="1"}[5m] offset 10m)))'
            ' > 3 * on (instance) group_left b unless c:d:e or vector(0) and label_replace(f, "g", "h", "", "")')
    assert metric_names(expr) == {"a_seconds_bucket", "b", "c:d:e", "f"}
