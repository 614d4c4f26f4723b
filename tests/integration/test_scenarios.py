"""The four scenarios, CI-sized, end to end on the native stack (`lab scenario NAME`).

One stack for all four (the first scenario starts it with the fast alert rules and the CI budget;
the others reuse it), taken down at the end. Each scenario checks its own alerts and exits non-zero
when one did not fire or resolve in time; the tests also read its JSON result.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from lab import netns

from support import alert_span as span
from support import assert_incident_story

pytestmark = pytest.mark.janus
CI_SIZE = 60  # incident mega-room participants in CI (the default story has 500)


@pytest.fixture(scope="module")
def lab_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    assert netns.UP_NAME not in netns.existing(), "a native stack is already up on this machine: `lab down` first"
    home = tmp_path_factory.mktemp("lab")
    try:
        yield home
    finally:
        subprocess.run([sys.executable, "-m", "lab.cli", "down"], env={**os.environ, "LAB_HOME": str(home)},
                       capture_output=True, timeout=120)
    assert netns.UP_NAME not in netns.existing()


def scenario(home: Path, name: str, *args: str) -> dict:
    out = home / f"{name}.json"
    done = subprocess.run([sys.executable, "-m", "lab.cli", "scenario", name, "--out", str(out), *args],
                          env={**os.environ, "LAB_HOME": str(home)}, capture_output=True, text=True, timeout=900)
    print(done.stdout[-3000:])
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    return json.loads(out.read_text())


def test_incident_least_rooms_melts_the_mega_room_node_and_the_fix_resolves_it(lab_home):
    result = scenario(lab_home, "incident", "--size", str(CI_SIZE))
    assert_incident_story(result)


def test_lab_report_draws_every_panel_of_the_incident_with_the_hot_node_and_the_alerts_shaded(lab_home):
    out = lab_home / "report"
    done = subprocess.run([sys.executable, "-m", "lab.cli", "report", "--result", str(lab_home / "incident.json"),
                           "--out", str(out)], env={**os.environ, "LAB_HOME": str(lab_home)},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((out / "report.json").read_text())
    assert (out / "index.html").is_file()
    for panel in report["panels"]:
        assert (out / panel["file"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", panel["file"]
        assert all(q["error"] is None for q in panel["queries"]), panel["title"]
        assert panel["shaded"].get("SFUHighCPU sfu-node-04"), f"{panel['title']}: SFUHighCPU not shaded"
        assert panel["shaded"].get("SFUNackStorm sfu-node-04"), f"{panel['title']}: SFUNackStorm not shaded"
    per_node = [p for p in report["panels"] if any(s["labels"].get("instance") or s["labels"].get("node")
                                                    for q in p["queries"] for s in q["series"])]
    assert per_node, "no panel draws per-node series"
    for panel in per_node:
        hot = [s for q in panel["queries"] for s in q["series"]
               if "sfu-node-04" in (s["labels"].get("instance"), s["labels"].get("node")) and s["points"] > 0]
        nodes_drawn = {s["labels"].get("instance") or s["labels"].get("node") for q in panel["queries"]
                       for s in q["series"]}
        if any(str(n).startswith("sfu-node-") for n in nodes_drawn):
            assert hot, f"{panel['title']}: no data for the hot node"


def lab_check(home: Path, number: int, answers: dict) -> subprocess.CompletedProcess[str]:
    answers_file = home / f"answers-{number}.yml"
    answers_file.write_text(yaml.safe_dump(answers))
    return subprocess.run([sys.executable, "-m", "lab.cli", "check", str(number), "--answers", str(answers_file),
                           "--result", str(home / "incident.json")], env={**os.environ, "LAB_HOME": str(home)},
                          capture_output=True, text=True, timeout=120)


def test_lab_5_check_finds_the_hot_node_of_the_real_incident_and_rejects_a_wrong_one(lab_home):
    right = {"hot_node_query": "instance:sfu_process_cpu:budget_ratio_rate1m", "hot_node": "sfu-node-04",
             "cause": "least_rooms placement kept sending new rooms to the mega-room's node"}
    done = lab_check(lab_home, 5, {"lab5": right})
    assert done.returncode == 0, done.stdout + done.stderr
    done = lab_check(lab_home, 5, {"lab5": {**right, "hot_node": "sfu-node-02", "cause": "high CPU"}})
    assert done.returncode == 1, done.stdout + done.stderr
    assert "lab5.hot_node is 'sfu-node-02'" in done.stdout and "names a symptom" in done.stdout, done.stdout


def test_silent_failure_fires_while_publishers_are_silent_and_resolves_when_they_send_again(lab_home):
    result = scenario(lab_home, "silent-failure")
    assert result["ok"], result["error"]
    silent = next(p["at"] for p in result["phases"] if p["phase"] == "publishers-silent")
    back = next(p["at"] for p in result["phases"] if p["phase"] == "publishers-back")
    alert = span(result, "SFUSilentFailure", result["facts"]["node"])
    assert silent < alert["fired_at"] <= back < alert["resolved_at"]


def test_auth_storm_fires_the_auth_failure_alert_and_it_resolves_when_the_storm_ends(lab_home):
    result = scenario(lab_home, "auth-storm")
    assert result["ok"], result["error"]
    calm = next(p["at"] for p in result["phases"] if p["phase"] == "calm")
    alert = span(result, "SignalingAuthFailureSpike")
    assert alert["fired_at"] <= calm < alert["resolved_at"]
    assert result["facts"]["refused"] > 100


def test_node_down_fires_janus_down_keeps_new_rooms_away_and_resolves_after_the_restart(lab_home):
    result = scenario(lab_home, "node-down")
    assert result["ok"], result["error"]
    assert result["facts"]["new_room_went_to"] != "sfu-node-02"
    restart = next(p["at"] for p in result["phases"] if p["phase"] == "restart")
    alert = span(result, "JanusDown", "sfu-node-02")
    assert alert["fired_at"] <= restart < alert["resolved_at"]
