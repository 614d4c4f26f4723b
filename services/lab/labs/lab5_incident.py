"""Lab 5: the incident: find the hot node from PromQL alone and name the cause.

After ``lab scenario incident`` the trainee writes the query that singled out the hot node, the
node, and the cause. The check computes the incident from Prometheus (``lab.labs.incident``): the
node whose CPU-budget series peaked and for which ``SFUHighCPU`` fired, and the placement policy
that kept feeding it. The trainee's query runs at the moment ``SFUHighCPU`` first fired and must
rank that node first among several.
"""

from __future__ import annotations

from pathlib import Path

from lab.labs.common import Answers, Check, LiveStack, last_scenario, node_of
from lab.labs.incident import cpu_series, incident_truth

TITLE = "the incident"
SYMPTOMS = ("cpu", "nack", "loss", "freeze", "latency")
CAUSE_WORDS = ("placement", "balanc")  # plus the policy's own name, found in the data


def check(answers: Answers, stack: LiveStack, *, result_file: Path | None = None, **_: object) -> Check:
    result = Check(5, TITLE, answers, stack)
    scenario = last_scenario(stack.home, result_file)
    query = result.answer("hot_node_query", "the PromQL query that shows which SFU node ran hot "
                                            "(one series per node)")
    node = result.answer("hot_node", "the node your query singled out (sfu-node-NN)")
    cause = result.answer("cause", "the cause in a few words: what put the load on that node")
    truth = incident_truth(stack.prometheus, scenario)
    hot = truth.hot
    first = min(truth.fired("SFUHighCPU", hot), default=None)
    if hot is None or first is None:
        result.lack(f"SFUHighCPU never fired in the last scenario ({scenario.get('scenario')}, "
                    f"ok={scenario.get('ok')}): run the whole incident, `lab scenario incident`, then check again")
        return result
    result.good(f"in the last scenario {hot} peaked at {truth.peaks[hot]:.0%} of its CPU budget and SFUHighCPU "
                f"fired for it {first - truth.start:.0f} s in")
    if query:
        mine = result.trainee_query("hot_node_query", query, at=first)
        if mine is not None:
            ranked = sorted(mine, key=lambda s: float(s["value"][1]), reverse=True)
            nodes = [node_of(s["metric"]) for s in ranked]
            if len(nodes) < 2:
                result.lack(f"lab5.hot_node_query returns {len(nodes)} series at the moment SFUHighCPU fired; "
                            f"compare every node (one series each), e.g. {cpu_series()}")
            elif nodes[0] != hot:
                result.lack(f"lab5.hot_node_query ranks {nodes[0] or 'a series without a node label'} first when "
                            f"SFUHighCPU fired; the hot node was another: look at CPU against each node's budget "
                            f"({cpu_series()})")
            else:
                result.good(f"your query ranks {hot} first among {len(nodes)} nodes when SFUHighCPU fired")
    if node is not None:
        if node != hot:
            result.lack(f"lab5.hot_node is {node!r}; the node that ran out of CPU was another one: run your "
                        "query at the time SFUHighCPU fired (Prometheus's graph tab, or ALERTS)")
        else:
            result.good(f"you named the hot node: {hot}")
    if cause is not None:
        words = str(cause).lower()
        accepted = CAUSE_WORDS + ((truth.policy,) if truth.policy else ())
        if any(word in words for word in accepted):
            result.good(f"cause: {cause!r} (rooms went to {hot} by {truth.policy or 'the placement policy'})")
        elif any(word in words for word in SYMPTOMS):
            result.lack(f"lab5.cause {cause!r} names a symptom on {hot}; the cause is why {hot} got that load: "
                        f"look at signaling_room_placements_total by node and policy")
        else:
            result.lack(f"lab5.cause {cause!r} does not name the cause: which placement policy chose {hot} for "
                        "new rooms? (signaling_room_placements_total by node and policy)")
    return result
