"""``lab``: the native runner's command line.

    lab up [--fast]          start the whole stack natively (no Docker) and say where to look
    lab status               components, PIDs, ports, health (exit 1 if any is not healthy)
    lab logs NAME [-n 50]    the end of one component's log
    lab demo [--seconds 10]  real media from aiortc peers through the running stack, then what it shows
    lab scenario NAME        incident, silent-failure, node-down, auth-storm (starts the stack if needed)
    lab report               the dashboards' panels as PNGs + HTML over the last scenario run
    lab check N              check workshop lab N (docs/labs/) against the running stack
    lab federation up|down   two regional Prometheus servers and a global one beside the stack (lab 8)
    lab down                 stop everything; no process, namespace or CPU group is left

The stack keeps running between commands (``lab up`` returns); ``lab down`` ends it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

from lab.components import ComponentError
from lab.monitoring import MissingPrerequisite
from lab.native import LabError, NativeStack, load_secrets
from lab.netns import NetnsError
from sfu_stack import topology
from sfu_stack.prom import query
from sfu_stack.readiness import NotReady, wait_until


def _urls(stack: NativeStack) -> list[str]:
    netns = stack.netns()
    ip = netns.ns_ip if netns else "?"
    return [
        f"Prometheus     http://{ip}:{topology.PROMETHEUS_PORT}  (alerts: /alerts, targets: /targets)",
        f"Alertmanager   http://{ip}:{topology.ALERTMANAGER_PORT}",
        f"Alert sink     http://{ip}:{topology.ALERT_SINK_PORT}/alerts  (notifications Alertmanager sent)",
        f"Signaling      ws://{ip}:{topology.SIGNALING_PORT}/ws/signaling, metrics "
        f"http://{ip}:{topology.SIGNALING_PORT}/metrics, admin API http://{ip}:{topology.SIGNALING_ADMIN_PORT}",
        "Grafana        not available natively: the dashboards' queries run in Prometheus's own UI",
        "Logs           lab logs NAME;  stop with: lab down",
    ]


def up(args: argparse.Namespace) -> int:
    stack = NativeStack()
    print("lab up: starting the native stack")
    try:
        took = stack.up(fast=args.fast, node_cpus=getattr(args, "node_cpus", None),
                        link_kbit=getattr(args, "link_kbit", None))
    except (LabError, ComponentError, NetnsError, MissingPrerequisite) as exc:
        print(f"lab up: {exc}", file=sys.stderr)
        return 1
    state = stack.state() or {}
    print(f"\nall components healthy after {took:.1f} s; total resident memory "
          f"{stack.resident_bytes() / 2**20:.0f} MiB")
    for note in state.get("notes", []):
        print(f"note: {note}")
    print("\nwhere to look:")
    for line in _urls(stack):
        print(f"  {line}")
    return 0


def status(args: argparse.Namespace) -> int:
    stack = NativeStack()
    if stack.state() is None:
        print("lab status: the native stack is not up (`lab up` starts it)")
        return 1
    rows = stack.status()
    print(f"{'component':22} {'pid':>8}  {'ports':34} health")
    for row in rows:
        print(f"{row['name']:22} {row['pid'] or '-':>8}  {row['ports']:34} {row['health']}")
    problems = [r for r in rows if r["health"] not in ("healthy", "absent", "done")]
    for row in rows:
        if row["note"] and row["health"] in ("absent", "done"):
            print(f"  {row['name']}: {row['note']}")
    for row in problems:
        print(f"\n{row['name']} is {row['health']}; end of its log:\n{row['note']}")
    for note in (stack.state() or {}).get("notes", []):
        print(f"note: {note}")
    print()
    for line in _urls(stack):
        print(f"  {line}")
    return 1 if problems else 0


def logs(args: argparse.Namespace) -> int:
    stack = NativeStack()
    known = {e.name: e for e in stack.entries()}
    if args.name not in known:
        names = ", ".join(known) or "none: the stack is not up"
        print(f"lab logs: no component {args.name!r} (running: {names})", file=sys.stderr)
        return 1
    lines = Path(known[args.name].log).read_text(errors="replace").splitlines()
    print("\n".join(lines[-args.lines:]))
    return 0


def down(args: argparse.Namespace) -> int:
    NativeStack().down()
    print("lab down: nothing of the native stack is left")
    return 0


async def _media(stack: NativeStack, seconds: float, subscribers: int) -> int:
    from loadtest.bots.peers import SyntheticVideo, bind_ice_to, new_peer_connection, publish, subscribe
    from signaling.client import SignalingClient
    from signaling.tokens import mint

    netns = stack.netns()
    assert netns is not None
    key = load_secrets(stack.home, stack.env)["SIGNALING_TOKEN_KEY"]
    url = f"ws://{netns.ns_ip}:{topology.SIGNALING_PORT}/ws/signaling"
    bind_ice_to(netns.host_ip)
    clients, pcs = [], []
    try:
        publisher = await SignalingClient.connect(url)
        clients.append(publisher)
        pcs.append(pc := new_peer_connection())
        joined = await publisher.join("demo", mint(key, room="demo", user="presenter"))
        print(f"publisher joined room 'demo' as feed {joined['feed']}; ICE "
              f"{await publish(publisher, pc, video=SyntheticVideo())}")
        counters = []
        for index in range(subscribers):
            client = await SignalingClient.connect(url)
            clients.append(client)
            pcs.append(pc := new_peer_connection())
            reply = await client.join("demo", mint(key, room="demo", user=f"viewer-{index}"), role="subscriber")
            state, counter = await subscribe(client, pc, await client.first_feed(reply))
            print(f"subscriber {index} ICE: {state}")
            counters.append(counter)
        print(f"media flows for {seconds:g} s ...")
        await asyncio.sleep(seconds)
        frames = [c.frames for c in counters]
        print(f"video frames received per subscriber: {frames}")
        return 0 if frames and min(frames) > 0 else 1
    finally:
        for pc in pcs:
            await pc.close()
        for client in clients:
            await client.close()


def _show_prometheus(stack: NativeStack) -> None:
    netns = stack.netns()
    assert netns is not None
    url = f"http://{netns.ns_ip}:{topology.PROMETHEUS_PORT}"
    print("\nwaiting for Prometheus to scrape the media twice (15 s scrape interval) ...")
    try:
        wait_until(lambda: bool(query(url, "instance:sfu_egress_bits:rate1m > 0")), timeout=45, interval=1,
                   what="egress bitrate in Prometheus")
    except (NotReady, OSError, RuntimeError) as exc:
        print(f"  {exc}")
    queries = {
        "SFU handles per node": "sfu_active_handles",
        "Janus CPU, share of budget": "instance:sfu_process_cpu:budget_ratio_rate1m",
        "egress bit/s per node": "instance:sfu_egress_bits:rate1m",
        "targets up": "sum(up)",
    }
    print("\nwhat Prometheus sees:")
    for title, promql in queries.items():
        try:
            result = query(url, promql)
        except (OSError, RuntimeError) as exc:
            print(f"  {title}: {exc}")
            continue
        result.sort(key=lambda s: s["metric"].get("instance", ""))  # Prometheus returns series in no set order
        shown = ", ".join(f"{s['metric'].get('instance', '')} {float(s['value'][1]):.3g}".strip() for s in result)
        print(f"  {title:28} {shown or '(no data yet)'}")


def demo(args: argparse.Namespace) -> int:
    stack = NativeStack()
    if stack.state() is None and up(argparse.Namespace(fast=False)) != 0:
        return 1
    code = asyncio.run(_media(stack, args.seconds, args.subscribers))
    _show_prometheus(stack)
    print("\nthe stack is still up: `lab status`, `lab down`")
    return code


def scenario(args: argparse.Namespace) -> int:
    from lab.control import NativeControl
    from loadtest.scenarios import scenarios
    from loadtest.scenarios.runner import execute, summarize

    known = scenarios()
    if args.name not in known:
        print(f"lab scenario: no scenario {args.name!r}; known: {', '.join(known)}", file=sys.stderr)
        return 2
    chosen = known[args.name]
    size = args.size or chosen.default_size
    stack = NativeStack()
    budget, link = chosen.node_cpus(size), chosen.link_kbit(size)
    running = stack.settings()
    if stack.state() is None:
        if up(argparse.Namespace(fast=True, node_cpus=budget, link_kbit=link)) != 0:
            return 1
    elif (not running.get("fast") or (budget is not None and running.get("node_cpus") != budget)
          or (link is not None and running.get("link_kbit") != link)):
        wanted = {"fast": True, "node_cpus": budget if budget is not None else "any",
                  "link_kbit": link if link is not None else "any"}
        print(f"lab scenario: the running stack has {running}, {args.name} at size {size} needs {wanted}: "
              "`lab down` first (lab scenario then starts it right)", file=sys.stderr)
        return 1
    folder = stack.home / "scenarios"
    out = args.out or folder / f"{chosen.name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    result = asyncio.run(execute(chosen, NativeControl(stack), size, out))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "last.json").write_text(json.dumps(result, indent=1))
    print("\n" + summarize(result))
    print(f"result: {out}")
    return 0 if result["ok"] else 1


def check(args: argparse.Namespace) -> int:
    from lab import labs

    return labs.run(args.number, answers_file=args.answers, prometheus=args.prometheus, result_file=args.result)


def federation(args: argparse.Namespace) -> int:
    from lab.labs import federation as regions

    return regions.command(args.action, interval=args.interval)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lab", description="Native runner of the SFU Observability Lab.",
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser("up", help="start the native stack")
    command.add_argument("--fast", action="store_true", help="alert rules with the lab's fast override")
    command.add_argument("--node-cpus", type=float, default=None, help="CPU budget per SFU node in cores "
                         "(default: SFU_NODE_CPUS or 1)")
    command.add_argument("--link-kbit", type=int, default=None, help="each SFU node's RTP egress link in kbit/s "
                         "(default: SFU_NODE_LINK_KBIT, else unshaped)")
    command.set_defaults(func=up)
    commands.add_parser("status", help="components, PIDs, ports and health").set_defaults(func=status)
    command = commands.add_parser("logs", help="the end of one component's log")
    command.add_argument("name", help="component name, as in `lab status`")
    command.add_argument("-n", "--lines", type=int, default=50, help="lines to show (default: %(default)s)")
    command.set_defaults(func=logs)
    commands.add_parser("down", help="stop the native stack").set_defaults(func=down)
    command = commands.add_parser("scenario", help="run a scenario against the native stack (starts it if needed)")
    command.add_argument("name", help="incident, silent-failure, node-down or auth-storm")
    command.add_argument("--size", type=int, default=0,
                         help="the one size knob (incident: mega-room participants; default: the scenario's own)")
    command.add_argument("--out", type=Path, default=None, help="JSON result file (default: LAB_HOME/scenarios/)")
    command.set_defaults(func=scenario)
    from lab import report as report_command  # matplotlib is imported only when a report is drawn

    command = commands.add_parser("report", help="every dashboard panel as a PNG over the last scenario run, "
                                                 "plus index.html")
    report_command.add_arguments(command)
    command.set_defaults(func=report_command.command)
    command = commands.add_parser("check", help="check a workshop lab (docs/labs/) against the running stack")
    command.add_argument("number", type=int, help="the lab, 1 to 8")
    command.add_argument("--answers", type=Path, default=None, help="answers file (default: labs/answers.yml)")
    command.add_argument("--prometheus", default=None, help="Prometheus URL (default: the running stack's)")
    command.add_argument("--result", type=Path, default=None,
                         help="scenario result for labs 5 and 7 (default: LAB_HOME/scenarios/last.json)")
    command.set_defaults(func=check)
    command = commands.add_parser("federation", help="regional and global Prometheus beside the stack (lab 8)")
    command.add_argument("action", choices=("up", "down", "status"))
    command.add_argument("--interval", default="15s", help="scrape and evaluation interval (default: %(default)s)")
    command.set_defaults(func=federation)
    command = commands.add_parser("demo", help="real media through the running stack (starts it if needed)")
    command.add_argument("--seconds", type=float, default=10, help="how long media flows (default: %(default)s)")
    command.add_argument("--subscribers", type=int, default=2, help="aiortc subscribers (default: %(default)s)")
    command.set_defaults(func=demo)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
