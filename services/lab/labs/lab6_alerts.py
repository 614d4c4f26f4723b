"""Lab 6: the article's ``SFUNackStorm``, verbatim: its promtool cases fail; the trainee fixes it.

The trainee copies the article's rule (prometheus/tests/article/sfu_nack_storm_article.yml) to a
file of their own, fixes its expression and names the file. The check runs promtool on it with the
project's own cases (the input series of prometheus/tests/article/sfu_nack_storm_article_test.yml and
what the project's ``SFUNackStorm`` must do in each: fire on a stack that starts into a storm, stay
quiet on a trickle over a zero baseline), runs the same cases on the article's rule to show they fail
there, and runs the fixed expression on the live Prometheus beside the stack's own rule.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lab.labs.common import Answers, Check, LiveStack, PrometheusError, instant, prometheus_api
from lab.monitoring import binary
from sfu_stack import topology

TITLE = "alerts"
PROMETHEUS_DIR = topology.REPO / "prometheus"
ARTICLE_RULE = PROMETHEUS_DIR / "tests" / "article" / "sfu_nack_storm_article.yml"
CASES_FILE = PROMETHEUS_DIR / "tests" / "article" / "sfu_nack_storm_article_test.yml"
PROJECT_ALERT = "SFUNackStorm"


@dataclass(frozen=True)
class Case:
    name: str
    interval: str
    input_series: list[dict[str, Any]]
    expectations: list[tuple[str, bool]]  # (eval_time, must be firing)


def project_cases(path: Path = CASES_FILE) -> list[Case]:
    """Each case of the article test, with what the project's SFUNackStorm does at each evaluation."""
    cases = []
    for test in yaml.safe_load(path.read_text())["tests"]:
        expected = [(str(t["eval_time"]), bool(t["exp_alerts"])) for t in test.get("alert_rule_test", [])
                    if t["alertname"] == PROJECT_ALERT]
        if expected:
            cases.append(Case(test["name"], str(test.get("interval", "1m")), test["input_series"], expected))
    return cases


def promtool() -> str:
    return str(Path(binary("prometheus")).with_name("promtool"))


def run_case(rule_file: Path, alertname: str, case: Case, workdir: Path) -> str | None:
    """promtool's complaint when ``alertname`` in ``rule_file`` does not behave as the project's rule does."""
    test = {"rule_files": [str(rule_file)], "evaluation_interval": "1m", "tests": [{
        "name": case.name, "interval": case.interval, "input_series": case.input_series,
        "promql_expr_test": [{
            "expr": f'count(ALERTS{{alertname="{alertname}", alertstate="firing"}}) or vector(0)',
            "eval_time": at, "exp_samples": [{"labels": "{}", "value": 1 if firing else 0}]}
            for at, firing in case.expectations]}]}
    path = workdir / f"case-{abs(hash(case.name))}.yml"
    path.write_text(yaml.safe_dump(test, sort_keys=False))
    done = subprocess.run([promtool(), "test", "rules", str(path)], capture_output=True, text=True, timeout=60)
    if done.returncode == 0:
        return None
    output = " ".join((done.stdout + done.stderr).split())
    seen = [f"at {at} it was {'firing' if float(got) > 0 else 'quiet'}"
            for at, got in re.findall(r"time: (\S+), exp: \{\} \S+ got: \{\} (\S+)", output)]
    return "; ".join(seen) if seen else f"promtool: {output[-400:]}"


def _alert_rules(document: Any) -> list[dict[str, Any]]:
    if not isinstance(document, dict):
        return []
    return [r for g in document.get("groups") or [] for r in g.get("rules") or [] if isinstance(r, dict)
            and "alert" in r]


def _resolve(value: str) -> Path:
    path = Path(value).expanduser()
    if path.is_absolute() or path.exists():
        return path.resolve()
    return (topology.REPO / path).resolve()


def check(answers: Answers, stack: LiveStack, **_: object) -> Check:
    result = Check(6, TITLE, answers, stack)
    article = ARTICLE_RULE.relative_to(topology.REPO)
    value = result.answer("fixed_rule_file", f"the path of your fixed copy of {article}")
    if value is None:
        return result
    path = _resolve(str(value))
    if not path.is_file():
        result.lack(f"lab6.fixed_rule_file: no file at {path}: copy {article} "
                    "there (e.g. labs/scratch/nack_storm.yml) and fix it")
        return result
    if path == ARTICLE_RULE.resolve() or PROMETHEUS_DIR.resolve() in path.parents:
        result.lack(f"lab6.fixed_rule_file points into prometheus/ ({path}): fix your own copy, outside the "
                    "project's rules")
        return result
    try:
        rules = _alert_rules(yaml.safe_load(path.read_text()))
    except yaml.YAMLError as exc:
        result.lack(f"{path} is not valid YAML: {exc}")
        return result
    chosen = result.answers.get(6, "alert_name") or (rules[0]["alert"] if rules else None)
    rule = next((r for r in rules if r["alert"] == chosen), None)
    if rule is None:
        result.lack(f"{path} has no alerting rule {chosen or ''} (groups: - rules: - alert: NAME, expr: ...): "
                    "keep the article file's layout")
        return result
    checked = subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    if checked.returncode != 0:
        result.lack(f"promtool check rules {path} fails: {' '.join((checked.stdout + checked.stderr).split())[-300:]}")
        return result
    with tempfile.TemporaryDirectory(prefix="lab6-") as scratch:
        workdir = Path(scratch)
        for case in project_cases():
            article_failure = run_case(ARTICLE_RULE, _alert_rules(yaml.safe_load(ARTICLE_RULE.read_text()))[0]["alert"],
                               case, workdir)
            failure = run_case(path, rule["alert"], case, workdir)
            expected = ", ".join(f"{'fires' if firing else 'quiet'} at {at}" for at, firing in case.expectations)
            if failure:
                hint = (" (a young stack has no samples 10 minutes back: make the missing baseline count as a "
                        "storm, e.g. with `unless`)" if any(firing for _, firing in case.expectations) else
                        " (5 x a zero baseline is 0: add an absolute floor, e.g. > 20 NACKs/s)")
                result.lack(f"promtool case {case.name!r}: your {rule['alert']} must be: {expected}; {failure}"
                            f"{hint}")
            else:
                shown = "fails it, as the lab shows" if article_failure else "passes it as well"
                result.good(f"promtool case {case.name!r}: your {rule['alert']} passes ({expected}); "
                            f"the article's rule {shown}")
    _on_live_prometheus(result, rule)
    return result


def _on_live_prometheus(result: Check, rule: dict[str, Any]) -> None:
    stack = result.stack
    try:
        now_firing = instant(stack.prometheus, str(rule["expr"]))
    except PrometheusError as exc:
        result.lack(f"the live Prometheus refuses your expression: {exc}")
        return
    groups = prometheus_api(stack.prometheus, "/api/v1/rules", type="alert")["groups"]
    ours = next((r for g in groups for r in g["rules"] if r["name"] == PROJECT_ALERT), None)
    state = f"the stack's {PROJECT_ALERT} is {ours['state']}" if ours else f"the stack has no {PROJECT_ALERT} rule"
    result.good(f"your expression runs on the live Prometheus ({len(now_firing)} series above the threshold now; "
                f"{state})")
