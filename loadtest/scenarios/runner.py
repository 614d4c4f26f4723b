"""Run a scenario against a stack, whichever runner it is on: ``execute`` takes a ``StackControl``.

``lab scenario`` calls it with the native backend (``lab.control.NativeControl``); the Compose
``load`` profile's ``loadtest-bots`` service runs ``main`` here, with the Compose backend
(``sfu_stack.compose.ComposeControl``, the Docker SDK on the mounted Docker socket). The result
(phases, alert spans, facts) is written as JSON (Compose: ``/results/last.json`` in the
``scenario-results`` volume).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from loadtest.bots.media import skip_video_decoding
from loadtest.bots.peers import bind_ice_to
from loadtest.scenarios import Scenario, scenarios
from loadtest.scenarios.base import Run, ScenarioFailed
from sfu_stack.control import StackControl


def budget_mismatch(scenario: Scenario, stack: StackControl, size: int) -> str | None:
    """Why the stack's SFU CPU limits or media links do not fit ``scenario`` at ``size`` (None: they do)."""
    cores, kbit = scenario.node_cpus(size), scenario.link_kbit(size)
    wrong = []
    if cores is not None:
        limits = {node: stack.cpu_limit(node) for node in stack.nodes()}
        wrong += [f"{node} {have if have is not None else 'unlimited'} core" for node, have in sorted(limits.items())
                  if have is None or abs(have - cores) > 1e-6]
    if kbit is not None:
        links = {node: stack.link_kbit(node) for node in stack.nodes()}
        wrong += [f"{node} link {have if have is not None else 'unshaped'}" + (" kbit/s" if have else "")
                  for node, have in sorted(links.items()) if have != kbit]
    if not wrong:
        return None
    wanted = f"{cores:g} core" if cores is not None else "any CPU budget"
    wanted += f" and a {kbit} kbit/s media link" if kbit is not None else ""
    return (f"{scenario.name} at size {size} is calibrated for {wanted} per SFU node, and the stack has: "
            f"{', '.join(wrong)}. Start the stack with that budget: "
            f"{stack.start_hint(cores if cores is not None else 1.0, kbit)}")


async def execute(scenario: Scenario, stack: StackControl, size: int, out: Path | None) -> dict:
    endpoints = stack.endpoints()
    if endpoints.ice_address:
        bind_ice_to(endpoints.ice_address)
    skip_video_decoding()
    async with Run(scenario.name, stack, size=size, out=out, endpoints=endpoints) as run:
        try:
            mismatch = await run.act(budget_mismatch, scenario, stack, size)
            if mismatch:
                raise ScenarioFailed(mismatch)
            await scenario.run(run)
        except ScenarioFailed as exc:
            result = run.result(ok=False, error=str(exc))
        else:
            result = run.result(ok=True)
    run.save(result)
    return result


def summarize(result: dict) -> str:
    lines = [f"scenario {result['scenario']} (size {result['size']}, {result.get('runner', '?')} stack): "
             f"{'PASSED' if result['ok'] else 'FAILED'}"]
    if result["error"]:
        lines.append(f"  why: {result['error']}")
    for span in result["alerts"]:
        fired = f"{span['fired_at']:.0f} s" if span["fired_at"] is not None else "-"
        resolved = f"{span['resolved_at']:.0f} s" if span["resolved_at"] is not None else "still firing"
        lines.append(f"  {span['alertname']:26} {span['node']:14} fired at {fired:>6}, resolved at {resolved}")
    for key, value in result["facts"].items():
        lines.append(f"  {key}: {value}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the Compose ``load`` profile's scenario service."""
    from sfu_stack.compose import ComposeControl, ComposeError

    parser = argparse.ArgumentParser(description="Run a scenario against the Compose stack.",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("name", choices=sorted(scenarios()))
    parser.add_argument("--size", type=int, default=0, help="0: the scenario's default")
    parser.add_argument("--out", type=Path, default=Path("/results/last.json"))
    args = parser.parse_args(argv)
    try:
        stack = ComposeControl.from_env()
    except ComposeError as exc:
        print(f"loadtest-bots: {exc}", file=sys.stderr)
        return 2
    chosen = scenarios()[args.name]
    result = asyncio.run(execute(chosen, stack, args.size or chosen.default_size, args.out))
    print(summarize(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
