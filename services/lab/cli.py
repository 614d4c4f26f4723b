"""``lab``: the native runner's command line.

    lab demo [--seconds 15] [--subscribers 2]

``demo`` is the main job for now: it starts the stack pieces that exist (four real Janus SFU
nodes in a private network namespace and the signaling service), sends real media from an aiortc
publisher to aiortc subscribers through them, prints what the service's metrics say, and tears
everything down. It stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from lab.components import ComponentError
from lab.netns import NetnsError
from lab.stack import Stack


def _metrics(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url, timeout=5) as reply:
        text = reply.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def _media_demo(stack: Stack, seconds: float, subscribers: int) -> int:
    from lab.peers import SyntheticVideo, bind_ice_to, new_peer_connection, publish, subscribe
    from signaling.client import SignalingClient
    from signaling.tokens import mint

    assert stack.netns is not None
    bind_ice_to(stack.netns.host_ip)
    clients, pcs = [], []
    try:
        publisher = await SignalingClient.connect(stack.ws_url)
        clients.append(publisher)
        pcs.append(pc := new_peer_connection())
        joined = await publisher.join("demo", mint(stack.token_key, room="demo", user="presenter"))
        print(f"publisher joined room 'demo' as feed {joined['feed']}")
        print(f"publisher ICE: {await publish(publisher, pc, video=SyntheticVideo())}")
        counters = []
        for index in range(subscribers):
            client = await SignalingClient.connect(stack.ws_url)
            clients.append(client)
            pcs.append(pc := new_peer_connection())
            await client.join("demo", mint(stack.token_key, room="demo", user=f"viewer-{index}"), role="subscriber")
            state, counter = await subscribe(client, pc, joined["feed"])
            print(f"subscriber {index} ICE: {state}")
            counters.append(counter)
        print(f"receiving media for {seconds:g} s ...")
        await asyncio.sleep(seconds)
        frames = [c.frames for c in counters]
        print(f"video frames received per subscriber: {frames}")
        metrics = _metrics(f"{stack.http_url}/metrics")

        def value(name: str, **labels: str) -> float:
            return metrics.get((name, tuple(sorted(labels.items()))), 0.0)

        print("\nsignaling metrics (from /metrics):")
        print(f"  signaling_websockets_active      {value('signaling_websockets_active', region='local'):g}")
        print(f"  signaling_rooms_active           {value('signaling_rooms_active', region='local'):g}")
        print(f"  signaling_participants_active    {value('signaling_participants_active', region='local'):g}")
        count = value("signaling_ice_negotiation_seconds_count", status="connected")
        total = value("signaling_ice_negotiation_seconds_sum", status="connected")
        print(f"  ICE negotiations connected       {count:g} (mean {total / max(count, 1) * 1000:.0f} ms)")
        joins = value("signaling_join_duration_seconds_count")
        print(f"  joins                            {joins:g} (mean "
              f"{value('signaling_join_duration_seconds_sum') / max(joins, 1) * 1000:.0f} ms)")
        placed = {dict(labels)["node"]: v for (name, labels), v in metrics.items()
                  if name == "signaling_room_placements_total"}
        print(f"  room placements                  {placed}")
        return 0 if frames and min(frames) > 0 else 1
    finally:
        for pc in pcs:
            await pc.close()
        for client in clients:
            await client.close()


def demo(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="lab-demo-") as workdir:
        stack = Stack(Path(workdir), placement_policy=args.policy)
        try:
            stack.start()
            print(f"stack up: {len(stack.nodes)} Janus nodes in namespace {stack.netns.name if stack.netns else '?'}, "
                  f"signaling on {stack.ws_url}")
            return asyncio.run(_media_demo(stack, args.seconds, args.subscribers))
        except (ComponentError, NetnsError) as exc:
            print(f"lab demo: {exc}", file=sys.stderr)
            return 1
        finally:
            stack.stop()
            print("stack down")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lab", description="Native runner of the SFU Observability Lab.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("demo", help="start the stack, send real media through it, print metrics, stop")
    run.add_argument("--seconds", type=float, default=10, help="how long media flows (default: %(default)s)")
    run.add_argument("--subscribers", type=int, default=2, help="aiortc subscribers (default: %(default)s)")
    run.add_argument("--policy", default="least_participants", help="placement policy (default: %(default)s)")
    run.set_defaults(func=demo)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
