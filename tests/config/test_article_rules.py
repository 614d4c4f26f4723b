"""The article's alert rules (prometheus/tests/article/): each flaw a promtool case beside ours, quoted in docs."""

from __future__ import annotations

import subprocess

import pytest
import yaml
from docs_promql import REPO, blocks
from promql_names import rule_documents

ARTICLE_DIR = REPO / "prometheus" / "tests" / "article"
RULE_FILES = sorted(p for p in ARTICLE_DIR.glob("*_article.yml"))
PROMETHEUS_CONFIG = REPO / "prometheus" / "prometheus.yml"
# Where each article rule is quoted: the runbook section of our rule, and lab 6 for the NACK storm.
QUOTED_IN = {"ArticleSFUNackStorm": ["docs/runbooks.md", "docs/labs/06-alerts.md"],
             "ArticleSFUSilentFailure": ["docs/runbooks.md"],
             "ArticleSFUHighCPU": ["docs/runbooks.md"]}


def article_rule(path):
    (group,) = yaml.safe_load(path.read_text())["groups"]
    (rule,) = group["rules"]
    return rule


def ours() -> dict[str, tuple[str, dict]]:
    return {rule["alert"]: (name, rule) for name, doc in rule_documents().items() for group in doc["groups"]
            for rule in group["rules"] if "alert" in rule}


def test_promtool_passes_every_article_case_file_including_the_cases_that_show_a_flaw():
    files = sorted(str(p) for p in ARTICLE_DIR.glob("*_test.yml"))
    assert len(files) == len(RULE_FILES) == 3
    run = subprocess.run(["promtool", "test", "rules", *files], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.count("SUCCESS") == len(files), run.stdout


def test_the_verbatim_nack_storm_rule_is_the_articles_expression_for_and_severity():
    rule = article_rule(ARTICLE_DIR / "sfu_nack_storm_article.yml")
    assert rule["expr"] == "rate(sfu_nacks_total[1m]) > 5 * (rate(sfu_nacks_total[5m] offset 10m))"
    assert (rule["for"], rule["labels"]) == ("1m", {"severity": "critical"})


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_each_article_rule_is_one_renamed_alert_of_ours_with_its_own_case_file_loading_both(path):
    rule = article_rule(path)
    name = rule["alert"].removeprefix("Article")
    assert rule["alert"] == f"Article{name}" and name in ours(), "the article's alert, renamed to load beside ours"
    cases = yaml.safe_load(path.with_name(path.stem + "_test.yml").read_text())
    assert path.name in cases["rule_files"] and f"../../rules/{ours()[name][0]}" in cases["rule_files"]


def named_nodes(group: dict, alertname: str) -> set[str | None]:
    """The `node` of every alert the case expects from ``alertname`` (None: an alert naming no node)."""
    return {alert["exp_labels"].get("node") for case in group["alert_rule_test"] if case["alertname"] == alertname
            for alert in case["exp_alerts"]}


def flaw(group: dict, article: str) -> str:
    theirs, mine = named_nodes(group, article), named_nodes(group, article.removeprefix("Article"))
    if theirs == mine:
        return "none shown"
    return "missed" if not theirs else "false alarm" if not mine else "names no node" if theirs == {None} else "other"


def test_each_case_is_a_sentence_and_shows_one_flaw_of_the_articles_rule_next_to_ours():
    shown = {}
    for path in RULE_FILES:
        article = article_rule(path)["alert"]
        for group in yaml.safe_load(path.with_name(path.stem + "_test.yml").read_text())["tests"]:
            assert len(group["name"].split()) >= 8, group["name"]
            assert {c["alertname"] for c in group["alert_rule_test"]} == {article, article.removeprefix("Article")}
            shown.setdefault(article, []).append(flaw(group, article))
    assert shown == {"ArticleSFUHighCPU": ["names no node", "missed"],
                     "ArticleSFUNackStorm": ["missed", "false alarm"],
                     "ArticleSFUSilentFailure": ["false alarm", "missed"]}


def test_no_article_rule_is_loaded_by_the_stack():
    assert "article" not in PROMETHEUS_CONFIG.read_text()
    assert not list((REPO / "prometheus" / "rules").glob("*article*"))


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_the_docs_quote_each_article_expression_verbatim_in_a_promql_block(path):
    rule = article_rule(path)
    quoted = {str(b.path.relative_to(REPO)) for b in blocks() if b.expr.strip() == str(rule["expr"]).strip()}
    assert set(QUOTED_IN[rule["alert"]]) <= quoted, f"{rule['alert']} is quoted verbatim only in {sorted(quoted)}"
