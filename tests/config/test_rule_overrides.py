"""lab.rule_overrides: the lab's shorter `for` and windows applied to the committed rules, never a copy of them."""

from __future__ import annotations

import subprocess

import pytest
import yaml
from promql_names import REPO, rule_documents

from lab.rule_overrides import (
    OverrideError,
    apply_overrides,
    main,
    parse_overrides,
    render_prometheus,
    render_rules,
    substitute_window,
)

FAST = REPO / "prometheus" / "overrides" / "fast.yml"


def rules_by_name(folder) -> dict[str, dict]:
    return {rule.get("alert") or rule["record"]: rule
            for path in sorted(folder.glob("*.yml")) for group in yaml.safe_load(path.read_text())["groups"]
            for rule in group["rules"]}


def test_the_fast_override_shortens_for_and_windows_and_promtool_accepts_the_result(tmp_path):
    written = render_rules(tmp_path, FAST)
    assert sorted(p.name for p in written) == sorted(rule_documents())
    run = subprocess.run(["promtool", "check", "rules", *map(str, written)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    committed = rules_by_name(REPO / "prometheus" / "rules")
    rendered = rules_by_name(tmp_path)
    overrides = yaml.safe_load(FAST.read_text())["alerts"]
    for name, override in overrides.items():
        assert rendered[name]["for"] == override["for"] != committed[name]["for"], name
    storm = rendered["SFUNackStorm"]["expr"]
    assert "[5m]" not in storm and "offset 10m" not in storm
    assert storm.count("[1m]") == 3 and "[1m] offset 2m" in storm
    for name, rule in committed.items():
        if "record" in rule:
            assert rendered[name] == rule, f"recording rule {name} changed"
        else:
            assert rendered[name]["annotations"] == rule["annotations"]
            assert rendered[name]["labels"] == rule["labels"]


def test_without_an_override_file_the_rules_are_copied_byte_for_byte(tmp_path):
    for path in render_rules(tmp_path):
        assert path.read_bytes() == (REPO / "prometheus" / "rules" / path.name).read_bytes()


def test_the_override_files_alerts_all_exist_in_the_committed_rules():
    names = {rule["alert"] for doc in rule_documents().values() for g in doc["groups"] for rule in g["rules"]
             if "alert" in rule}
    assert set(yaml.safe_load(FAST.read_text())["alerts"]) <= names


@pytest.mark.parametrize(("document", "message"), [
    ({"alerts": {"NoSuchAlert": {"for": "1m"}}}, "no alert rule named NoSuchAlert"),
    ({"alerts": {"SFUHighCPU": {"windows": {"5m": "1m"}}}}, "has no \\[5m\\]"),
    ({"alerts": {"SFUHighCPU": {"for": "soon"}}}, "not a Prometheus duration"),
    ({"alerts": {"SFUHighCPU": {"for": "1m", "severity": "info"}}}, "expected a mapping"),
    ({"rules": {}}, "one top-level key `alerts`"),
])
def test_an_override_that_would_change_nothing_or_is_malformed_is_refused(document, message):
    with pytest.raises(OverrideError, match=message):
        apply_overrides(rule_documents(), parse_overrides(document))


def test_window_substitution_touches_only_range_selectors_and_offsets_of_that_exact_duration():
    expr = "rate(a[5m]) + rate(b[15m]) + max_over_time(c[5m:1m]) + rate(d[5m] offset 5m) + rate(e[1m] offset 15m)"
    changed, count = substitute_window(expr, "5m", "1m")
    assert changed == ("rate(a[1m]) + rate(b[15m]) + max_over_time(c[1m:1m]) + rate(d[1m] offset 1m)"
                       " + rate(e[1m] offset 15m)")
    assert count == 4
    assert substitute_window("rate(x[5ms])", "5m", "1m") == ("rate(x[5ms])", 0)


def test_render_prometheus_lays_out_a_folder_and_can_point_a_job_at_a_tests_own_port(tmp_path):
    config = render_prometheus(tmp_path, target_set="native", overrides_file=FAST,
                               targets={"signaling_backend": [{"targets": ["127.0.0.1:18080"]}]})
    assert config == tmp_path / "prometheus.yml"
    (group,) = yaml.safe_load((tmp_path / "targets" / "active" / "signaling_backend.yml").read_text())
    assert group == {"targets": ["127.0.0.1:18080"],
                     "labels": {"service": "signaling", "env": "lab", "region": "local"}}
    assert rules_by_name(tmp_path / "rules")["SFUHighCPU"]["for"] == "30s"
    run = subprocess.run(["promtool", "check", "config", str(config)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and "WARNING" not in run.stdout + run.stderr, run.stdout + run.stderr
    with pytest.raises(ValueError, match="no job"):
        render_prometheus(tmp_path, targets={"nope": []})


def test_the_cli_writes_the_folder_and_exits_2_on_a_bad_override(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "ok"), "--target-set", "compose", "--overrides", str(FAST)]) == 0
    assert (tmp_path / "ok" / "targets" / "active" / "sfu_nodes.yml").read_text().count("sfu-node-0") >= 8
    bad = tmp_path / "bad.yml"
    bad.write_text("alerts: {Nope: {for: 1m}}\n")
    assert main(["--out", str(tmp_path / "bad"), "--rules-only", "--overrides", str(bad)]) == 2
    assert "no alert rule named Nope" in capsys.readouterr().err
