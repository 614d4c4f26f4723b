"""Lab 7: the fix: placement by handles, the hot node drained, the incident's alerts resolved.

The trainee applies the runbook's fix on the live stack through signaling's admin API. The check
reads the placement policy and the drained nodes from ``GET /admin/placement``, the hot node and
the alerts' firing intervals of the last scenario from Prometheus (``lab.labs.incident``), the
alerts active now from Prometheus and Alertmanager, and the notifications in the alert sink.
"""

from __future__ import annotations

from pathlib import Path

from lab.labs.common import Answers, Check, LiveStack, http_json, last_scenario, node_of, prometheus_api
from lab.labs.incident import INCIDENT_ALERTS, incident_truth
from signaling.config import POLICIES

TITLE = "the fix"
FIXED_POLICY = "least_handles"
assert FIXED_POLICY in POLICIES
ADMIN = 'curl -s -H "Authorization: Bearer $SIGNALING_ADMIN_TOKEN"'


def check(answers: Answers, stack: LiveStack, *, result_file: Path | None = None, **_: object) -> Check:
    result = Check(7, TITLE, answers, stack)
    scenario = last_scenario(stack.home, result_file)
    truth = incident_truth(stack.prometheus, scenario)
    hot = truth.hot
    if hot is None or not truth.fired("SFUHighCPU", hot):
        result.lack("the last scenario has no SFUHighCPU to fix: run `lab scenario incident` (lab 5) first")
        return result
    placement = stack.admin("GET", "/admin/placement")
    if placement["policy"] != FIXED_POLICY:
        result.lack(f"placement policy is {placement['policy']}: switch it to {FIXED_POLICY}: {ADMIN} -X PUT "
                    f"-d '{{\"policy\": \"{FIXED_POLICY}\"}}' {stack.signaling_admin}/admin/placement")
    else:
        result.good(f"placement policy is {FIXED_POLICY} (signaling's admin API)")
    node = next((n for n in placement["nodes"] if n["name"] == hot), None)
    if node is None or not node["draining"]:
        result.lack(f"{hot} (the hot node) is not drained: {ADMIN} -X POST "
                    f"{stack.signaling_admin}/admin/nodes/{hot}/drain")
    else:
        result.good(f"{hot} is drained: no new room goes there")
    for alertname in INCIDENT_ALERTS:
        _alert_resolved(result, alertname, hot, truth.fired(alertname, hot))
    return result


def _alert_resolved(result: Check, alertname: str, hot: str, fired: list[float]) -> None:
    stack = result.stack
    if not fired:
        result.lack(f"{alertname} never fired for {hot} in the last scenario: nothing to watch resolve; "
                    "run the whole incident (`lab scenario incident`)")
        return
    active = [a for a in prometheus_api(stack.prometheus, "/api/v1/alerts")["alerts"]
              if a["labels"].get("alertname") == alertname and node_of(a["labels"]) == hot]
    if active:
        result.lack(f"Prometheus still has {alertname} {active[0]['state']} for {hot}: wait for its load to fall "
                    f"(the drain keeps new rooms away; its rooms shrink as people leave), then check again")
        return
    held = [a for a in http_json(f"{stack.alertmanager}/api/v2/alerts?active=true")
            if a["labels"].get("alertname") == alertname and node_of(a["labels"]) == hot]
    if held:
        result.lack(f"Alertmanager still holds {alertname} for {hot} as active: Prometheus has stopped sending it; "
                    "Alertmanager resolves it within a few minutes: check again")
        return
    result.good(f"{alertname} fired for {hot} ({len(fired)} evaluations) and has resolved "
                "(Prometheus and Alertmanager have no active alert)")
    notified = http_json(f"{stack.alert_sink}/alerts?alertname={alertname}")["notifications"]
    statuses = [a["status"] for n in notified for a in n["alerts"]
                if a["labels"].get("alertname") == alertname and node_of(a["labels"]) == hot]
    if "resolved" in statuses:
        result.good(f"the alert sink received the resolved notification of {alertname} for {hot}")
    elif "firing" in statuses:
        result.lack(f"the alert sink has {alertname} firing for {hot} but no resolved notification yet: "
                    "Alertmanager sends it at the group's next interval (group_interval, 5 minutes): check again")
    else:
        result.good(f"(the alert sink recorded no {alertname} notification for {hot}: this stack's Alertmanager "
                    "did not page for it)")
