"""Exporter benchmark: one full export at 100, 500 and 1,000 handles against a naive sequential sweep.

A real Janus node (static event loops, as the lab runs it) and the signaling service; participants
join rooms of 50 without media (one session and one handle each). At each size it times, on the
same node:

* ``export``: what a Prometheus scrape costs with the default configuration (media from events):
  ``Exporter.refresh`` plus rendering the exposition;
* ``admin mode``: the same with ``JANUS_EXPORTER_MEDIA_SOURCE=admin`` (concurrent handle_info sweep);
* ``naive``: list_sessions, list_handles per session, handle_info per handle, one request at a
  time (what the article's exporter would have to do to see every handle).

It prints wall times, the naive/export ratio, the exporter's CPU per export as a share of one core
at a 15 s scrape interval, and the CPU of taking in one stats period of media events (every handle
with an audio and a video stream, JSON decoding included) as a share of one core at Janus's
default 5 s ``stats_period``. Best of ``--repeat`` runs per cell.

    python bench/exporter_bench.py [--sizes 100,500,1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import tempfile
import time
from pathlib import Path

from prometheus_client import generate_latest

from janus_exporter import config as exporter_config
from janus_exporter.admin import AdminClient
from janus_exporter.collectors import build_registry
from janus_exporter.exporter import Exporter
from lab.stack import Stack
from signaling.client import SignalingClient
from signaling.tokens import mint

SCRAPE_INTERVAL = 15.0
STATS_PERIOD = 5.0
ROOM_SIZE = 50
STATS_EVENT = json.loads((Path(__file__).parents[1] / "tests/unit/fixtures/janus-samples/events-media-3-combined.json")
                         .read_text())


def cpu_now() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def timed(coro_factory, repeat: int) -> tuple[float, float]:
    """Best wall time and the CPU of that run."""
    best = (float("inf"), 0.0)
    for _ in range(repeat):
        cpu0, wall0 = cpu_now(), time.perf_counter()
        await coro_factory()
        wall, cpu = time.perf_counter() - wall0, cpu_now() - cpu0
        best = min(best, (wall, cpu))
    return best


async def naive_sweep(client: AdminClient) -> int:
    sessions = (await client.request("list_sessions"))["sessions"]
    seen = 0
    for session in sessions:
        for handle in (await client.request("list_handles", session_id=session)).get("handles", []):
            await client.request("handle_info", session_id=session, handle_id=handle)
            seen += 1
    return seen


def events_post(handles: int) -> bytes:
    """One grouped post of stats events: every handle with audio and video (combined shape)."""
    return json.dumps([{**STATS_EVENT, "handle_id": h + 1} for h in range(handles)]).encode()


def ingest_seconds(exporter: Exporter, post: bytes, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        cpu0 = cpu_now()
        exporter.events.accept(json.loads(post))
        best = min(best, cpu_now() - cpu0)
    return best


def exporter_for(node, media_source: str) -> Exporter:
    return Exporter(exporter_config.load({
        "JANUS_ADMIN_SECRET": node.admin_secret, "JANUS_EXPORTER_ADMIN_URL": node.admin_url,
        "JANUS_EXPORTER_PIDFILE": str(node.pidfile), "JANUS_EXPORTER_MEDIA_SOURCE": media_source,
        "JANUS_EXPORTER_DEADLINE_SECONDS": "30"}))


async def run(sizes: list[int], repeat: int) -> None:
    with tempfile.TemporaryDirectory() as workdir:
        stack = Stack(Path(workdir), node_count=1)
        stack.start()
        clients: list[SignalingClient] = []
        try:
            node = stack.nodes[0]
            exporters = {mode: exporter_for(node, mode) for mode in ("events", "admin")}
            registries = {mode: build_registry(e) for mode, e in exporters.items()}
            naive_client = AdminClient(node.admin_url, node.admin_secret, concurrency=1)
            print(f"{'handles':>8} {'export ms':>10} {'admin-mode ms':>14} {'naive ms':>9} {'naive/export':>13}"
                  f" {'export CPU %core @15s':>22} {'events CPU %core @5s':>21}")
            for size in sizes:
                while len(clients) < size:
                    index = len(clients)
                    room = f"bench-{index // ROOM_SIZE}"
                    client = await SignalingClient.connect(stack.ws_url)
                    reply = await client.join(room, mint(stack.token_key, room=room), role="subscriber")
                    assert reply["type"] == "joined", reply
                    clients.append(client)
                results = {}
                for mode, exporter in exporters.items():
                    async def export(exporter=exporter, registry=registries[mode]) -> None:
                        await exporter.refresh()
                        assert exporter.up, "Janus did not answer the sweep"
                        generate_latest(registry)
                    results[mode] = await timed(export, repeat)
                handles = exporters["events"].inventory.handles  # type: ignore[union-attr]
                naive_wall, _ = await timed(lambda: naive_sweep(naive_client), repeat)
                export_wall, export_cpu = results["events"]
                ingest = ingest_seconds(exporters["events"], events_post(handles), repeat)
                print(f"{handles:>8} {export_wall * 1000:>10.1f} {results['admin'][0] * 1000:>14.1f}"
                      f" {naive_wall * 1000:>9.1f} {naive_wall / export_wall:>12.1f}x"
                      f" {100 * export_cpu / SCRAPE_INTERVAL:>21.3f}%"
                      f" {100 * ingest / STATS_PERIOD:>20.3f}%")
            for exporter in exporters.values():
                await exporter.close()
            await naive_client.close()
        finally:
            for client in clients:
                await client.close()
            stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--sizes", default="100,500,1000", help="participant counts (one handle each)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per cell; the best is kept")
    args = parser.parse_args()
    asyncio.run(run([int(s) for s in args.sizes.split(",")], args.repeat))


if __name__ == "__main__":
    main()
