"""Signaling benchmark: joins/s and messages/s per core, with metrics on and with metrics off.

Runs the real service (a subprocess) against real Janus nodes in the lab namespace, twice: once
with ``SIGNALING_METRICS=true`` and once with ``false``. "Per core" divides the work by the CPU
seconds the signaling process itself used in that phase (from /proc), so the figure does not
depend on how fast this script's clients are. Prints a table and the metrics overhead. A "message" is one client
message handled and answered (a ping and its pong); the message phase runs three times and the
median is kept.

    python bench/signaling_bench.py [--joins 500] [--messages 100000] [--connections 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path

from lab.stack import Stack
from signaling.client import SignalingClient
from signaling.tokens import mint

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


async def measure_joins(stack: Stack, pid: int, joins: int, concurrency: int) -> tuple[float, float]:
    gate = asyncio.Semaphore(concurrency)
    clients: list[SignalingClient] = []

    async def one(index: int) -> None:
        async with gate:
            client = await SignalingClient.connect(stack.ws_url)
            clients.append(client)
            room = f"bench-{index % 50}"
            reply = await client.join(room, mint(stack.token_key, room=room), role="subscriber")
            assert reply["type"] == "joined", reply

    cpu0, wall0 = cpu_seconds(pid), time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(joins)))
    cpu, wall = cpu_seconds(pid) - cpu0, time.perf_counter() - wall0
    for client in clients:
        await client.close()
    return joins / wall, joins / max(cpu, 1e-9)


async def measure_messages(stack: Stack, pid: int, messages: int, connections: int) -> tuple[float, float]:
    per_connection = messages // connections
    batch = 200
    frame = json.dumps({"type": "ping"})
    clients = [await SignalingClient.connect(stack.ws_url) for _ in range(connections)]

    async def drive(client: SignalingClient) -> None:
        for _ in range(per_connection // batch):
            for _ in range(batch):
                await client.ws.send(frame)
            for _ in range(batch):
                await client.ws.recv()

    cpu0, wall0 = cpu_seconds(pid), time.perf_counter()
    await asyncio.gather(*(drive(c) for c in clients))
    cpu, wall = cpu_seconds(pid) - cpu0, time.perf_counter() - wall0
    for client in clients:
        await client.close()
    handled = connections * (per_connection // batch) * batch  # client messages, each answered by a pong
    return handled / wall, handled / max(cpu, 1e-9)


def run(metrics_on: bool, args: argparse.Namespace) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-signaling-") as workdir:
        stack = Stack(Path(workdir), node_count=2, signaling_env={
            "SIGNALING_METRICS": "true" if metrics_on else "false",
            "SIGNALING_RATE_LIMIT": "1000000", "SIGNALING_RATE_BURST": "1000000",
            "SIGNALING_LOG_LEVEL": "WARNING"})
        stack.start()
        try:
            assert stack.signaling is not None and stack.signaling.pid is not None
            pid = stack.signaling.pid
            joins_wall, joins_core = asyncio.run(measure_joins(stack, pid, args.joins, args.concurrency))
            rounds = sorted((asyncio.run(measure_messages(stack, pid, args.messages, args.connections))
                             for _ in range(3)), key=lambda r: r[1])
            msgs_wall, msgs_core = rounds[1]  # the median of three rounds
        finally:
            stack.stop()
    return {"joins/s": joins_wall, "joins/s per core": joins_core,
            "messages/s": msgs_wall, "messages/s per core": msgs_core}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--joins", type=int, default=2000, help="joins per run (default: %(default)s)")
    parser.add_argument("--concurrency", type=int, default=50, help="joins in flight (default: %(default)s)")
    parser.add_argument("--messages", type=int, default=100_000, help="pings per run (default: %(default)s)")
    parser.add_argument("--connections", type=int, default=20, help="connections sending (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each mode, best kept (default: %(default)s)")
    args = parser.parse_args()
    # Alternate the two modes and keep each one's best run, so warm-up and drift do not favour either.
    runs: dict[str, list[dict[str, float]]] = {"metrics on": [], "metrics off": []}
    for _ in range(args.repeat):
        for label in ("metrics off", "metrics on"):
            runs[label].append(run(label == "metrics on", args))
    results = {label: {key: max(r[key] for r in rs) for key in rs[0]} for label, rs in runs.items()}
    keys = list(results["metrics on"])
    print(f"{'':14}" + "".join(f"{k:>22}" for k in keys))
    for label, figures in results.items():
        print(f"{label:14}" + "".join(f"{figures[k]:>22,.0f}" for k in keys))
    for key in ("joins/s per core", "messages/s per core"):
        on, off = results["metrics on"][key], results["metrics off"][key]
        print(f"metrics overhead on {key}: {(off / on - 1) * 100:+.1f}% CPU per unit of work")
    print("goals: >= 20,000 messages/s per core; overhead <= 5%")


if __name__ == "__main__":
    main()
