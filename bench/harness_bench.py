"""Harness benchmark: media subscribers per core, without and with video decoding, and lurkers per core.

A real Janus node and the signaling service (``lab.stack.Stack``), one publisher (320x240@15 VP8 and
an Opus tone) in this process, and the bots under test in a separate ``bots`` process whose CPU is
read from /proc over a steady window once every bot is connected. "Per core" = bots / (CPU seconds
of the bots process per wall second). Signaling-only participants (lurkers) are measured on the cost
of joining and on the cost of staying (keepalives, events).

    python bench/harness_bench.py [--subscribers 60] [--decoding 12] [--lurkers 500] [--window 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from prometheus_client import CollectorRegistry

from lab.stack import Stack, free_port
from loadtest.bots.fleet import Fleet
from loadtest.bots.metrics import BotMetrics
from loadtest.bots.peers import bind_ice_to
from signaling.tokens import mint

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def start_bots(stack: Stack, args: list[str], window: float) -> subprocess.Popen[str]:
    assert stack.netns is not None
    return subprocess.Popen(
        [sys.executable, "-m", "loadtest.bots", "--signaling", stack.ws_url, "--room", "bench", "--seconds",
         str(window + 60), "--ice-address", stack.netns.host_ip, "--metrics-host", "127.0.0.1",
         "--metrics-port", str(free_port()), *args],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "SIGNALING_TOKEN_KEY": stack.token_key})


async def measure(stack: Stack, args: list[str], window: float) -> tuple[float, float, float]:
    """Start a bots process; return (CPU-s to get ready, seconds to get ready, steady CPU share of a core)."""
    process = await asyncio.to_thread(start_bots, stack, args, window)
    try:
        started = time.monotonic()
        assert process.stdout is not None
        line = await asyncio.to_thread(process.stdout.readline)
        if not line.startswith("bots:"):
            raise RuntimeError(f"bots did not get ready: {line!r}")
        ready, ready_cpu = time.monotonic() - started, cpu_seconds(process.pid)
        await asyncio.sleep(3)  # let the joins' aftermath settle before the steady window
        cpu0, wall0 = cpu_seconds(process.pid), time.monotonic()
        await asyncio.sleep(window)
        share = (cpu_seconds(process.pid) - cpu0) / (time.monotonic() - wall0)
        return ready_cpu, ready, share
    finally:
        process.terminate()
        process.wait(30)


async def run(subscribers: int, decoding: int, lurkers: int, window: float) -> None:
    with tempfile.TemporaryDirectory() as workdir:
        stack = Stack(Path(workdir), node_count=1)
        stack.start()
        assert stack.netns is not None
        bind_ice_to(stack.netns.host_ip)
        fleet = Fleet(stack.ws_url, lambda room, user: mint(stack.token_key, room=room, user=user),
                      BotMetrics(CollectorRegistry()))
        try:
            await fleet.publishers("bench", 1)
            rows = []
            for label, count, extra in (("subscribers, video not decoded", subscribers, []),
                                        ("subscribers, video decoded", decoding, ["--decode"])):
                _, _, share = await measure(stack, ["--publishers", "0", "--subscribers", str(count), *extra], window)
                rows.append((label, count, share, count / share))
            join_cpu, join_wall, lurker_share = await measure(
                stack, ["--publishers", "0", "--subscribers", "0", "--lurkers", str(lurkers)], window)
        finally:
            await fleet.close()
            stack.stop()
    print(f"{'bots':34} {'count':>6} {'CPU % of a core':>16} {'per core':>10}")
    for label, count, share, per_core in rows:
        print(f"{label:34} {count:>6} {100 * share:>15.1f}% {per_core:>10.0f}")
    print(f"{'ratio not decoded / decoded':34} {'':>6} {'':>16} {rows[0][3] / rows[1][3]:>9.1f}x")
    print(f"{'lurkers (signaling only), staying':34} {lurkers:>6} {100 * lurker_share:>15.1f}% "
          f"{lurkers / max(lurker_share, 1e-6):>10.0f}")
    print(f"{'lurkers, joining':34} {lurkers:>6} {join_wall:>14.1f} s {lurkers / max(join_cpu, 1e-6):>7.0f}/CPU-s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=60, help="non-decoding media subscribers")
    parser.add_argument("--decoding", type=int, default=12, help="decoding media subscribers")
    parser.add_argument("--lurkers", type=int, default=500, help="signaling-only participants")
    parser.add_argument("--window", type=float, default=20, help="steady seconds measured")
    args = parser.parse_args()
    asyncio.run(run(args.subscribers, args.decoding, args.lurkers, args.window))


if __name__ == "__main__":
    main()
