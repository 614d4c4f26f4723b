"""Each lab's check on one live native stack: in the wrong state it says what is missing, in the right one it passes.

The tests run in file order on one stack (`lab up` in a temporary LAB_HOME): first what a fresh
stack lacks, then short media (lossy bots, a demo), the lab 2 scratch copy, lab 6, every PromQL
block of docs/ during a demo, federation, the fix. Labs 5 and 7 read the report tests' synthetic
incident (a real Prometheus with backfilled data) for the incident's history, and the live stack
for everything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lab.labs import (
    lab1_signaling,
    lab2_cardinality,
    lab3_buckets,
    lab4_exporter,
    lab5_incident,
    lab6_alerts,
    lab7_fix,
    lab8_federation,
)
from lab.labs.common import LiveStack, instant
from lab.native import NativeStack
from sfu_stack import topology
from sfu_stack.readiness import NotReady, wait_until
from signaling.client import SignalingClient

from conftest import answers, lab, passes_soon

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "config"))
from docs_promql import blocks  # noqa: E402  (a helper of tests/config)

pytestmark = pytest.mark.janus

LAB1 = {"active_rooms_query": "sum(signaling_rooms_active)",
        "ice_p95_query": "histogram_quantile(0.95, sum by (le) (rate(signaling_ice_negotiation_seconds_bucket[5m])))"}
LAB3 = {"article_buckets_ms": [50, 100, 250, 500], "default_buckets_ms": [50, 75, 100, 250, 500],
        "widest_gap_ms": 250}
LAB4 = {"bot_nacks_query": "increase(bot_nacks_sent_total[10m])",
        "sfu_nacks_query": 'sum by (instance) (increase(sfu_nacks_total{direction="received"}[10m]))'}
LAB5 = {"hot_node_query": "instance:sfu_process_cpu:budget_ratio_rate1m", "hot_node": "sfu-node-04",
        "cause": "least_rooms placement kept sending new rooms to the mega-room's node"}
LAB8 = {"cross_region_query": "sum(instance:sfu_saturation:index)",
        "per_region_query": "sum by (region) (instance:sfu_saturation:index)"}
SCRATCH = topology.REPO / "labs" / "scratch" / "lab2_rooms.py"


# ---- a fresh stack: what each lab lacks ------------------------------------------------------------

def test_on_a_fresh_stack_labs_1_3_and_4_say_which_traffic_is_missing_and_how_to_make_it(live):
    first = lab1_signaling.check(answers(lab1=LAB1), live)
    assert not first.ok
    assert any("no room was active" in m and "lab demo" in m for m in first.missing), first.render()
    third = lab3_buckets.check(answers(lab3=LAB3), live)
    assert any("no signaling_ice_negotiation_seconds_bucket series yet" in m for m in third.missing), third.render()
    fourth = lab4_exporter.check(answers(lab4={**LAB4, "node": "sfu-node-01"}), live)
    assert any("no bot sent a NACK" in m and "lab.labs.lab4_exporter" in m for m in fourth.missing), fourth.render()


def test_blank_answers_are_named_with_the_file_and_key_to_fill(live):
    verdict = lab1_signaling.check(answers(), live)
    assert any("lab1.active_rooms_query is blank" in m for m in verdict.missing), verdict.render()
    assert any("lab1.ice_p95_query is blank" in m for m in verdict.missing), verdict.render()


def test_lab_8_without_federation_names_the_command_that_starts_it(live):
    verdict = lab8_federation.check(answers(lab8=LAB8), live)
    assert any("global Prometheus does not answer" in m and "lab federation up" in m for m in verdict.missing), \
        verdict.render()


# ---- media: lossy bots, then a demo --------------------------------------------------------------

@pytest.fixture(scope="module")
def media(native_home: Path, live: LiveStack) -> str:
    """A publisher and a lossy subscriber for 40 s (three bot scrapes), then a short demo; returns the room's node."""
    argv, env = lab4_exporter.bots_command(NativeStack(native_home), seconds=40, loss=0.05)
    bots = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    placed: list[str] = []

    def room_placed() -> bool:
        placed.extend(n for r, n in live.admin("GET", "/admin/placement")["rooms"].items() if r == "lab4")
        return bool(placed) or bots.poll() is not None

    wait_until(room_placed, timeout=30, interval=0.5, what="the bots' room is placed")
    output, _ = bots.communicate(timeout=120)
    assert bots.returncode == 0 and placed, output
    # The first ICE reports only create the histogram's series; rate() sees the demo's.
    demo = lab(native_home, "demo", "--seconds", "3", "--subscribers", "1")
    assert demo.returncode == 0, demo.stdout + demo.stderr
    return placed[0]


def test_lab_1_passes_with_queries_that_follow_the_rooms_gauge_and_the_ice_histogram(live, media):
    verdict = passes_soon(lambda: lab1_signaling.check(answers(lab1=LAB1), live), timeout=60, what="lab 1")
    assert any("p95 ICE negotiation" in p for p in verdict.passed)


def test_lab_1_explains_a_rooms_query_that_counts_participants_and_a_p95_without_the_histogram(live, media):
    wrong = {"active_rooms_query": "sum(signaling_participants_active)",
             "ice_p95_query": "avg(job:signaling_ice_negotiation_seconds:p95_rate5m) * 3"}
    verdict = lab1_signaling.check(answers(lab1=wrong), live)
    assert any("disagrees with signaling_rooms_active" in m for m in verdict.missing), verdict.render()
    assert any("must estimate the quantile from the histogram" in m for m in verdict.missing), verdict.render()


def test_lab_1_quotes_prometheus_when_the_trainees_query_is_not_promql(live, media):
    verdict = lab1_signaling.check(answers(lab1={**LAB1, "active_rooms_query": "sum(signaling_rooms_active"}), live)
    assert any("lab1.active_rooms_query is not a query Prometheus accepts" in m and "parse error" in m
               for m in verdict.missing), verdict.render()


def test_lab_3_passes_with_both_layouts_and_explains_a_wrong_list(live, media):
    passes_soon(lambda: lab3_buckets.check(answers(lab3=LAB3), live), timeout=30, what="lab 3")
    verdict = lab3_buckets.check(answers(lab3={**LAB3, "default_buckets_ms": [50, 100, 250, 500]}), live)
    assert any("lab3.default_buckets_ms is [50, 100, 250, 500]" in m and "there are 5" in m
               for m in verdict.missing), verdict.render()


def test_lab_4_follows_the_nacks_to_the_bots_node_and_rejects_another_node(live, media):
    assert media in topology.NODE_NAMES
    verdict = passes_soon(lambda: lab4_exporter.check(answers(lab4={**LAB4, "node": media}), live), timeout=90,
                          what="lab 4")
    assert any(f"you followed the NACKs to {media}" in p for p in verdict.passed)
    other = next(n for n in topology.NODE_NAMES if n != media)
    wrong = lab4_exporter.check(answers(lab4={**LAB4, "node": other}), live)
    assert any(f"lab4.node is {other!r}, but the NACKs arrived on {media}" in m for m in wrong.missing), \
        wrong.render()


# ---- lab 2: the scratch copy -----------------------------------------------------------------------

def run_scratch(native_home: Path, copy: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(copy), "--every", "1", "--lifetime", "5"], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, "LAB_HOME": str(native_home)})


def stop(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGINT)
    process.wait(timeout=20)


def test_lab_2_without_room_id_says_to_add_it_and_with_it_shows_growth_and_the_rule_failing(native_home, live,
                                                                                            tmp_path):
    lab2 = {"series_count_query": 'count({service="lab2-scratch"})', "offending_label": "room_id"}
    missing = lab2_cardinality.check(answers(lab2=lab2), live)
    assert any("Prometheus has no scratch target" in m and "lab2_rooms.py" in m for m in missing.missing), \
        missing.render()

    untouched = tmp_path / "untouched.py"
    shutil.copy(SCRATCH, untouched)
    process = run_scratch(native_home, untouched)
    try:
        def scraped() -> bool:
            verdict = lab2_cardinality.check(answers(lab2=lab2), live)
            return not any("scratch target" in m or "cannot scrape" in m for m in verdict.missing)

        wait_until(scraped, timeout=45, interval=1, what="Prometheus scrapes the scratch copy")
        verdict = lab2_cardinality.check(answers(lab2=lab2), live)
        assert any("no series of your scratch copy carries a room_id label" in m for m in verdict.missing), \
            verdict.render()
    finally:
        stop(process)

    edited = tmp_path / "my_rooms.py"
    edited.write_text(SCRATCH.read_text().replace('LABELS = ["region"]', 'LABELS = ["region", "room_id"]'))
    process = run_scratch(native_home, edited)
    try:
        verdict = passes_soon(lambda: lab2_cardinality.check(answers(lab2=lab2), live), timeout=75, what="lab 2")
    finally:
        stop(process)
    assert any("label 'room_id' is not in the allowed list" in p for p in verdict.passed), verdict.render()
    assert any("series with room_id grew from" in p for p in verdict.passed)
    target = live.home / "run" / "prometheus" / "targets" / "active" / lab2_cardinality.SCRATCH_TARGET_FILE
    assert not target.exists(), "the scratch copy unregisters its target when stopped"


# ---- lab 6: the article's rule -----------------------------------------------------------------------

def test_lab_6_the_articles_rule_fails_the_young_stack_case_and_a_fixed_copy_passes(live, tmp_path):
    copy = tmp_path / "nack_storm.yml"
    shutil.copy(lab6_alerts.ARTICLE_RULE, copy)
    verdict = lab6_alerts.check(answers(lab6={"fixed_rule_file": str(copy)}), live)
    assert any("must be: fires at 10m; at 10m it was quiet" in m for m in verdict.missing), verdict.render()
    assert any("must be: quiet at 30m; at 30m it was firing" in m and "floor" in m for m in verdict.missing)

    document = yaml.safe_load(copy.read_text())
    rule = document["groups"][0]["rules"][0]
    assert (rule["for"], rule["labels"]["severity"]) == ("1m", "critical"), "the copy is the article's verbatim rule"
    # A floor, and a missing baseline counts as a storm (`unless` over an empty side keeps the left).
    rule["expr"] = ("rate(sfu_nacks_total[1m]) > 20 unless "
                    "rate(sfu_nacks_total[1m]) <= 5 * (rate(sfu_nacks_total[5m] offset 10m))")
    copy.write_text(yaml.safe_dump(document))
    verdict = lab6_alerts.check(answers(lab6={"fixed_rule_file": str(copy)}), live)
    assert verdict.ok, verdict.render()
    assert any("the article's rule fails it" in p for p in verdict.passed)
    assert any("runs on the live Prometheus" in p for p in verdict.passed)


def test_lab_6_refuses_a_rule_file_that_is_not_yaml_or_the_projects_own(live, tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text("groups: [\n")
    verdict = lab6_alerts.check(answers(lab6={"fixed_rule_file": str(broken)}), live)
    assert any("is not valid YAML" in m for m in verdict.missing), verdict.render()
    ours = lab6_alerts.check(answers(lab6={"fixed_rule_file": "prometheus/rules/sfu_alerts.yml"}), live)
    assert any("points into prometheus/" in m for m in ours.missing), ours.render()


# ---- the docs: every ```promql block on the live stack -------------------------------------------------

async def refuse_a_token(live: LiveStack) -> str:
    client = await SignalingClient.connect(f"ws://{live.ns_ip}:{topology.SIGNALING_PORT}/ws/signaling")
    try:
        reply = await client.join("docs", "not-a-token")
    finally:
        await client.close()
    assert reply["type"] == "error", reply
    return reply.get("reason", "")


def test_every_promql_block_of_the_docs_runs_on_the_live_stack_and_returns_data_unless_marked(native_home, live,
                                                                                              media):
    """A demo's media and a refused token on the stack the lossy bots used; each block must answer."""
    demo = subprocess.Popen([sys.executable, "-m", "lab.cli", "demo", "--seconds", "120", "--subscribers", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "LAB_HOME": str(native_home)})
    docs = blocks()
    series: dict[int, int] = {}
    lacking: list[str] = []
    try:
        asyncio.run(refuse_a_token(live))

        def unmarked_blocks_have_data() -> bool:
            for index, block in enumerate(docs):
                series[index] = len(instant(live.prometheus, block.expr))  # a parse error fails here
            lacking[:] = [f"{b.where} {b.one_line}" for i, b in enumerate(docs) if b.kind == "data" and not series[i]]
            return not lacking

        with contextlib.suppress(NotReady):  # the assertion below names what lacks data
            wait_until(unmarked_blocks_have_data, timeout=120, interval=3, what="every unmarked docs query has data")
    finally:
        demo.send_signal(signal.SIGINT)
        output, _ = demo.communicate(timeout=60)
    print(f"\n{len(docs)} promql blocks of docs/ ({len({b.expr for b in docs})} distinct) on the live stack:")
    for index, block in enumerate(docs):
        why = f" ({block.kind}: {block.why})" if block.why else ""
        print(f"  {series[index]:3d} series  {block.where}  {block.one_line[:90]}{why}")
    assert lacking == [], f"docs queries without data; the demo said:\n{output}"
    assert [b.where for i, b in enumerate(docs) if b.kind == "empty" and series[i]] == [], "marked empty, has data"


# ---- lab 8: federation -------------------------------------------------------------------------------

def test_lab_8_passes_on_the_global_server_and_explains_a_per_region_query_without_regions(native_home, live):
    started = lab(native_home, "federation", "up", "--interval", "1s")
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        verdict = passes_soon(lambda: lab8_federation.check(answers(lab8=LAB8), live), timeout=60, what="lab 8")
        assert any("cross-region total" in p for p in verdict.passed)
        wrong = lab8_federation.check(answers(lab8={**LAB8, "per_region_query": LAB8["cross_region_query"]}), live)
        assert any("must give one series per region" in m for m in wrong.missing), wrong.render()
    finally:
        assert lab(native_home, "federation", "down").returncode == 0


# ---- labs 5 and 7: the incident's history from the synthetic incident, the fix on the live stack ----------

@pytest.fixture
def incident_stack(live: LiveStack, incident) -> LiveStack:
    return LiveStack(**{**live.__dict__, "prometheus": incident.url})


def test_lab_5_passes_with_the_hot_node_and_the_placement_cause(incident_stack, incident_result):
    verdict = lab5_incident.check(answers(lab5=LAB5), incident_stack, result_file=incident_result)
    assert verdict.ok, verdict.render()
    assert any("your query ranks sfu-node-04 first" in p for p in verdict.passed)


def test_lab_5_explains_a_wrong_node_a_symptom_for_a_cause_and_a_query_about_one_node(incident_stack,
                                                                                       incident_result):
    wrong = {"hot_node_query": 'instance:sfu_process_cpu:budget_ratio_rate1m{instance="sfu-node-01"}',
             "hot_node": "sfu-node-01", "cause": "high CPU"}
    verdict = lab5_incident.check(answers(lab5=wrong), incident_stack, result_file=incident_result)
    assert any("returns 1 series" in m and "compare every node" in m for m in verdict.missing), verdict.render()
    assert any("lab5.hot_node is 'sfu-node-01'" in m for m in verdict.missing)
    assert any("names a symptom" in m and "signaling_room_placements_total" in m for m in verdict.missing)


def test_lab_7_names_the_policy_and_the_drain_still_missing_then_passes_once_both_are_done(incident_stack,
                                                                                            incident_result):
    live = incident_stack
    live.admin("PUT", "/admin/placement", {"policy": "least_participants"})
    verdict = lab7_fix.check(answers(), live, result_file=incident_result)
    assert any("placement policy is least_participants: switch it to least_handles" in m
               for m in verdict.missing), verdict.render()
    assert any("sfu-node-04 (the hot node) is not drained" in m for m in verdict.missing)
    try:
        live.admin("PUT", "/admin/placement", {"policy": "least_handles"})
        live.admin("POST", "/admin/nodes/sfu-node-04/drain")
        verdict = lab7_fix.check(answers(), live, result_file=incident_result)
        assert verdict.ok, verdict.render()
        assert any("SFUHighCPU fired for sfu-node-04" in p and "has resolved" in p for p in verdict.passed)
        assert any("SFUNackStorm fired for sfu-node-04" in p for p in verdict.passed)
    finally:
        live.admin("DELETE", "/admin/nodes/sfu-node-04/drain")
