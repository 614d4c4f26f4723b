"""Run a scenario against a stack: natively (``lab scenario``) or from the Compose ``load`` profile.

Both build ``Endpoints`` and hand them to the same scenario code. The result (phases, alert spans,
facts) is written as JSON: natively into ``LAB_HOME/scenarios/`` with ``last.json`` beside it (what
``lab report`` reads by default).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

from lab import topology
from lab.native import NativeStack, load_secrets
from loadtest.bots.media import skip_video_decoding
from loadtest.bots.peers import bind_ice_to
from loadtest.scenarios import Scenario, scenarios
from loadtest.scenarios.base import Endpoints, Run, ScenarioFailed


async def execute(scenario: Scenario, endpoints: Endpoints, size: int, out: Path | None,
                  restart_node: object = None) -> dict:
    skip_video_decoding()
    async with Run(scenario.name, endpoints, size=size, out=out) as run:
        run.restart_node = restart_node  # type: ignore[assignment]
        try:
            await scenario.run(run)
        except ScenarioFailed as exc:
            result = run.result(ok=False, error=str(exc))
        else:
            result = run.result(ok=True)
    run.save(result)
    return result


def native_endpoints(stack: NativeStack) -> Endpoints:
    netns = stack.netns()
    assert netns is not None
    secret = load_secrets(stack.home, stack.env)
    ip = netns.ns_ip
    return Endpoints(
        signaling_ws=f"ws://{ip}:{topology.SIGNALING_PORT}/ws/signaling",
        signaling_admin=f"http://{ip}:{topology.SIGNALING_ADMIN_PORT}",
        admin_token=secret["SIGNALING_ADMIN_TOKEN"], token_key=secret["SIGNALING_TOKEN_KEY"],
        prometheus=f"http://{ip}:{topology.PROMETHEUS_PORT}", alert_sink=f"http://{ip}:{topology.ALERT_SINK_PORT}",
        exporters={name: f"http://{ip}:{topology.exporter_port(i)}/metrics"
                   for i, name in enumerate(topology.NODE_NAMES)},
        bots_metrics=(netns.host_ip, topology.BOTS_METRICS_PORT),
        janus_pids={e.name: e.pid for e in stack.entries() if e.name in topology.NODE_NAMES},
    )


def summarize(result: dict) -> str:
    lines = [f"scenario {result['scenario']} (size {result['size']}): {'PASSED' if result['ok'] else 'FAILED'}"]
    if result["error"]:
        lines.append(f"  why: {result['error']}")
    for span in result["alerts"]:
        fired = f"{span['fired_at']:.0f} s" if span["fired_at"] is not None else "-"
        resolved = f"{span['resolved_at']:.0f} s" if span["resolved_at"] is not None else "still firing"
        lines.append(f"  {span['alertname']:26} {span['node']:14} fired at {fired:>6}, resolved at {resolved}")
    for key, value in result["facts"].items():
        lines.append(f"  {key}: {value}")
    return "\n".join(lines)


def run_native(stack: NativeStack, scenario: Scenario, size: int, out: Path | None = None) -> int:
    netns = stack.netns()
    assert netns is not None
    bind_ice_to(netns.host_ip)
    folder = stack.home / "scenarios"
    out = out or folder / f"{scenario.name}-{time.strftime('%Y%m%d-%H%M%S')}.json"

    async def restart(name: str) -> None:
        await asyncio.to_thread(stack.restart_node, name)
        endpoints.janus_pids[name] = next(e.pid for e in stack.entries() if e.name == name)

    endpoints = native_endpoints(stack)
    result = asyncio.run(execute(scenario, endpoints, size, out, restart))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "last.json").write_text(json.dumps(result, indent=1))
    print("\n" + summarize(result))
    print(f"result: {out}")
    return 0 if result["ok"] else 1


def main(argv: list[str] | None = None) -> int:
    """Entry point of the Compose ``load`` profile's scenario service (endpoints from the environment)."""
    parser = argparse.ArgumentParser(description="Run a scenario against the Compose stack.",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("name", choices=sorted(scenarios()))
    parser.add_argument("--size", type=int, default=0, help="0: the scenario's default")
    parser.add_argument("--out", type=Path, default=Path("/results/last.json"))
    args = parser.parse_args(argv)
    env = os.environ
    nodes = topology.NODE_NAMES
    endpoints = Endpoints(
        signaling_ws=env.get("LOAD_SIGNALING_WS", "ws://signaling:8080/ws/signaling"),
        signaling_admin=env.get("LOAD_SIGNALING_ADMIN", "http://signaling:8081"),
        admin_token=env["SIGNALING_ADMIN_TOKEN"], token_key=env["SIGNALING_TOKEN_KEY"],
        prometheus=env.get("LOAD_PROMETHEUS", "http://prometheus:9090"),
        alert_sink=env.get("LOAD_ALERT_SINK", "http://alert-sink:9099"),
        exporters={n: f"http://{n}:{topology.EXPORTER_PORT}/metrics" for n in nodes},
        bots_metrics=("0.0.0.0", topology.BOTS_METRICS_PORT),
        timeout_scale=float(env.get("LOAD_TIMEOUT_SCALE", "4")),
    )
    chosen = scenarios()[args.name]
    result = asyncio.run(execute(chosen, endpoints, args.size or chosen.default_size, args.out))
    print(summarize(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
