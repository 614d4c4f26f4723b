"""Lab 4: the exporter pattern: a NACK from a bot, through Janus, to ``sfu_nacks_total``.

The trainee runs lossy subscriber bots against the stack (``python -m lab.labs.lab4_exporter``
runs them with the stack's addresses and key); each dropped RTP packet makes the bot's receiver
send a NACK (``bot_nacks_sent_total``, scraped from the bots), Janus counts it for the handle and
reports it in its media events, and the node's exporter sidecar adds it to
``sfu_nacks_total{direction="received"}``. The trainee names the node and writes one query per
end. The check finds the node itself (Prometheus), reads the exporter's live /metrics, and runs
the trainee's queries.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from prometheus_client.parser import text_string_to_metric_families

from lab.labs.common import BOTS_JOB, SFU_JOB, Answers, Check, LiveStack, by_node, http_text, instant, node_of
from lab.native import NativeStack, load_secrets
from sfu_stack import topology

TITLE = "exporter pattern"
WINDOW = "10m"
BOT_NACKS = "bot_nacks_sent_total"  # loadtest.bots.metrics
SFU_NACKS = "sfu_nacks_total"  # janus_exporter
TRUE_BOT_NACKS = f'sum(increase({BOT_NACKS}{{job="{BOTS_JOB}"}}[{WINDOW}]))'
TRUE_NODE_NACKS = f'sum by (instance) (increase({SFU_NACKS}{{job="{SFU_JOB}", direction="received"}}[{WINDOW}]))'
RUN_BOTS = "run lossy bots for a minute: `.venv/bin/python -m lab.labs.lab4_exporter --seconds 60`"


def bots_command(stack: NativeStack, *, seconds: float, loss: float, room: str = "lab4") -> tuple[list[str], dict]:
    """argv and environment of the bots (loadtest.bots) for the running stack: 1 publisher, 1 lossy subscriber."""
    netns = stack.netns()
    if netns is None:
        raise SystemExit("the native stack is not up: start it with `lab up`")
    argv = [sys.executable, "-m", "loadtest.bots", "--signaling",
            f"ws://{netns.ns_ip}:{topology.SIGNALING_PORT}/ws/signaling", "--room", room, "--publishers", "1",
            "--subscribers", "1", "--seconds", f"{seconds:g}", "--loss", f"{loss:g}", "--loss-after", "2",
            "--ice-address", netns.host_ip, "--metrics-host", netns.host_ip,
            "--metrics-port", str(topology.BOTS_METRICS_PORT)]
    env = {**os.environ, "SIGNALING_TOKEN_KEY": load_secrets(stack.home, stack.env)["SIGNALING_TOKEN_KEY"]}
    return argv, env


def _exporter_nacks(stack: LiveStack, node: str) -> float | None:
    url = stack.exporters.get(node)
    if url is None:
        return None
    return sum(s.value for f in text_string_to_metric_families(http_text(url)) if f.name == SFU_NACKS.removesuffix(
        "_total") for s in f.samples if s.name == SFU_NACKS and s.labels.get("direction") == "received")


def check(answers: Answers, stack: LiveStack, **_: object) -> Check:
    result = Check(4, TITLE, answers, stack)
    bot_query = result.answer("bot_nacks_query", f"a PromQL query for the NACKs the bots sent ({BOT_NACKS})")
    node = result.answer("node", "the SFU node (sfu-node-NN) the bots' room was on")
    sfu_query = result.answer("sfu_nacks_query", f"a PromQL query for the NACKs each SFU node received from "
                                                 f"its peers ({SFU_NACKS}, direction=\"received\")")
    sent = sum(float(s["value"][1]) for s in instant(stack.prometheus, TRUE_BOT_NACKS))
    if sent <= 0:
        result.lack(f"no bot sent a NACK in the last {WINDOW} (Prometheus's {BOT_NACKS}): {RUN_BOTS}")
        return result
    per_node = {n: v for n, v in by_node(instant(stack.prometheus, TRUE_NODE_NACKS)).items() if v > 0}
    if not per_node:
        result.lack(f"the bots sent ~{sent:.0f} NACKs but no exporter counted one in {SFU_NACKS}: wait 15 s for "
                    "Janus's media events and a scrape, then check again")
        return result
    hot = max(per_node, key=per_node.__getitem__)
    at_source = _exporter_nacks(stack, hot)
    result.good(f"bots sent ~{sent:.0f} NACKs; {hot}'s exporter counted ~{per_node[hot]:.0f} received in the last "
                f"{WINDOW}" + (f" ({at_source:.0f} in total on its /metrics now)" if at_source is not None else ""))
    if node is not None:
        if node != hot:
            result.lack(f"lab4.node is {node!r}, but the NACKs arrived on {hot}: see which node's "
                        f"{SFU_NACKS}{{direction=\"received\"}} grew (or GET /admin/placement for the room)")
        else:
            result.good(f"you followed the NACKs to {hot}")
    if bot_query:
        mine = result.trainee_query("bot_nacks_query", bot_query)
        if mine is not None and (BOT_NACKS not in bot_query or not any(float(s["value"][1]) > 0 for s in mine)):
            result.lack(f"lab4.bot_nacks_query should read {BOT_NACKS} and show NACKs over a recent window, e.g. "
                        f"increase({BOT_NACKS}[{WINDOW}]); yours gives {[s['value'][1] for s in mine] or 'nothing'}")
        elif mine is not None:
            result.good("your bot-side query sees the NACKs the bots sent")
    if sfu_query:
        mine = result.trainee_query("sfu_nacks_query", sfu_query)
        if mine is not None:
            theirs = {node_of(s["metric"]): float(s["value"][1]) for s in mine}
            if SFU_NACKS not in sfu_query or theirs.get(hot, 0) <= 0:
                result.lack(f"lab4.sfu_nacks_query should show {hot}'s NACKs per node from {SFU_NACKS} "
                            f"(keep the instance label: sum by (instance) (increase(...[{WINDOW}]))); yours gives "
                            f"{theirs or 'nothing'}")
            else:
                result.good(f"your SFU-side query shows {hot}'s NACKs")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Lab 4: a publisher and a lossy subscriber bot on the running stack")
    parser.add_argument("--seconds", type=float, default=60, help="how long the bots stay (default: %(default)s)")
    parser.add_argument("--loss", type=float, default=0.05, help="share of RTP the subscriber drops")
    args = parser.parse_args(argv)
    command, env = bots_command(NativeStack(), seconds=args.seconds, loss=args.loss)
    return subprocess.run(command, env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
