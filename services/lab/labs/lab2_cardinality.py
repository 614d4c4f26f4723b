"""Lab 2: label cardinality: a ``room_id`` label in a scratch copy, its series growing in Prometheus.

The trainee copies ``labs/scratch/lab2_rooms.py`` (a scratch copy of the signaling service's room
metrics, simulating rooms that open and close), adds ``room_id`` to its labels and runs it. It
serves ``/metrics`` on the namespace's host end and registers itself with the running Prometheus
(a file_sd target of the ``loadtest_bots`` job, labelled ``service="lab2-scratch"``), so the live
Prometheus scrapes it every 15 s. The check measures the series count from Prometheus over time,
runs the trainee's counting query, and applies the project's cardinality rule
(``lab.labs.cardinality``) to the scratch copy's scrape.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import yaml

from lab.labs.cardinality import allowed_label_values, cardinality_violations, label_values
from lab.labs.common import (
    BOTS_JOB,
    Answers,
    Check,
    LiveStack,
    StackNotUp,
    http_text,
    instant,
    matrix,
    now,
    prometheus_api,
)
from lab.native import NativeStack
from sfu_stack import topology

TITLE = "label cardinality"
SCRATCH_PORT = topology.BOTS_METRICS_PORT + 1  # beside the bots' port on the namespace's host end
SCRATCH_SERVICE = "lab2-scratch"
SCRATCH_TARGET_FILE = f"{BOTS_JOB}_lab2_scratch.yml"  # matched by the job's file_sd glob
SELECTOR = f'{{job="{BOTS_JOB}", service="{SCRATCH_SERVICE}"}}'
BAD_LABEL = "room_id"
WINDOW = 300.0
STEP = 15.0
RUN_IT = "run your copy: `.venv/bin/python labs/scratch/lab2_rooms.py` (leave it running)"


def targets_folder(stack: NativeStack) -> Path:
    """The file_sd folder of the running Prometheus (laid out by ``lab up`` in LAB_HOME/run)."""
    return stack.home / "run" / "prometheus" / "targets" / "active"


@contextlib.contextmanager
def registered_scratch_target(stack: NativeStack | None = None) -> Iterator[tuple[str, int]]:
    """Where a scratch exporter must listen, registered as a target of the running Prometheus while open."""
    stack = stack or NativeStack()
    netns = stack.netns()
    if netns is None:
        raise StackNotUp("the native stack is not up: start it with `lab up`")
    folder = targets_folder(stack)
    path = folder / SCRATCH_TARGET_FILE
    path.write_text(yaml.safe_dump([{"targets": [f"{netns.host_ip}:{SCRATCH_PORT}"],
                                     "labels": {"service": SCRATCH_SERVICE, "env": "lab", "region": "local"}}]))
    try:
        yield netns.host_ip, SCRATCH_PORT
    finally:
        path.unlink(missing_ok=True)


def _scratch_target(stack: LiveStack) -> dict | None:
    targets = prometheus_api(stack.prometheus, "/api/v1/targets", state="active")["activeTargets"]
    return next((t for t in targets if t["labels"].get("service") == SCRATCH_SERVICE), None)


def check(answers: Answers, stack: LiveStack, **_: object) -> Check:
    result = Check(2, TITLE, answers, stack)
    count_query = result.answer("series_count_query", f"a PromQL query counting the series your scratch copy "
                                                      f"exposes (they carry {SELECTOR})")
    offending = result.answer("offending_label", "the label the project's cardinality rule rejects")
    target = _scratch_target(stack)
    if target is None:
        result.lack(f"Prometheus has no scratch target (service={SCRATCH_SERVICE}): {RUN_IT}")
        return result
    if target["health"] != "up":
        result.lack(f"Prometheus cannot scrape your scratch copy at {target['scrapeUrl']} "
                    f"({target.get('lastError') or target['health']}): {RUN_IT}")
        return result
    end = now()
    with_label = f'count({SELECTOR[:-1]}, {BAD_LABEL}!=""}})'
    grown = matrix(stack.prometheus, with_label, end - WINDOW, end, STEP)
    counts = [float(v) for _, v in grown[0]["values"]] if grown else []
    if not counts:
        result.lack(f"no series of your scratch copy carries a {BAD_LABEL} label: add {BAD_LABEL!r} to LABELS in "
                    f"your copy, restart it, and wait for a scrape (15 s)")
    elif len(counts) < 2 or counts[-1] <= min(counts):
        result.lack(f"the {BAD_LABEL} series count has not grown yet ({counts[-1]:g} now): keep your copy running "
                    "for a minute: Prometheus scrapes every 15 s and each new room adds series")
    else:
        result.good(f"series with {BAD_LABEL} grew from {min(counts):g} to {counts[-1]:g} in Prometheus over the "
                    f"last {len(counts) * STEP / 60:.0f} minutes: every room adds series that never go away")
    if count_query:
        at = now()
        truth = instant(stack.prometheus, f"count({SELECTOR})", at)
        mine = result.trainee_query("series_count_query", count_query, at=at)
        if mine is not None:
            values = [float(s["value"][1]) for s in mine]
            expected = float(truth[0]["value"][1]) if truth else 0.0
            if len(values) != 1 or values[0] != expected:
                result.lack(f"lab2.series_count_query gives {values or 'nothing'}; Prometheus holds {expected:g} "
                            f"series of your scratch copy: count({SELECTOR})")
            else:
                result.good(f"your query counts the scratch copy's {expected:g} series")
    _apply_rule(result, target["scrapeUrl"], offending)
    return result


def _apply_rule(result: Check, scrape_url: str, offending: object) -> None:
    try:
        text = http_text(scrape_url)
    except StackNotUp as exc:
        result.lack(f"your scratch copy does not answer ({exc}): {RUN_IT}")
        return
    violations = cardinality_violations(text, allowed_label_values(list(topology.NODE_NAMES), "local"))
    rejected = sorted(set(label_values(text)) - set(allowed_label_values([], "local")))
    if not violations:
        result.lack(f"the project's cardinality rule accepts your scratch copy: it has no {BAD_LABEL} label yet")
        return
    result.good("the project's cardinality rule (lab.labs.cardinality, as in tests/integration/test_mega_room.py) "
                f"fails on your copy: {violations[0]}")
    if offending is not None and str(offending) not in rejected:
        result.lack(f"lab2.offending_label is {offending!r}; the rule rejects {', '.join(rejected)}: read its "
                    "message above")
    elif offending is not None:
        result.good(f"you named the label the rule rejects: {offending}")
