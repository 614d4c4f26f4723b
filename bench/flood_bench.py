"""Connection-flood benchmark: what one source that never joins can make the signaling service hold.

Runs the real service (a subprocess, default limits) with one Janus node, on loopback only. A
bystander joined to a room from its own address (127.0.0.2) pings every 50 ms throughout. From one
source (127.0.0.1), ``--attempts`` connection attempts, half of each kind:

* idle upgrades: complete WebSocket handshakes that never send ``join``, each held until the
  service closes it (or refuses the upgrade), ``--concurrency`` in flight;
* half-open TCP: connections that send an unfinished upgrade request and nothing else, each held
  until the service drops it, ``--concurrency`` in flight.

Midway through the upgrades, a newcomer from a third address (127.0.0.3) connects and joins.
Prints the service's peak RSS (VmHWM) against its idle RSS, the refusals by kind from its
/metrics and from the clients' side, the bystander's ping p50/p99/max, and the newcomer's join
time. Every phase is bounded; the whole run takes about a minute.

    python bench/flood_bench.py [--attempts 20000] [--concurrency 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import statistics
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

import websockets
from prometheus_client.parser import text_string_to_metric_families
from websockets.exceptions import InvalidStatus

from lab.stack import Stack
from signaling.client import SignalingClient
from signaling.tokens import mint

FLOOD, BYSTANDER, NEWCOMER = "127.0.0.1", "127.0.0.2", "127.0.0.3"
HOLD_LIMIT = 30.0  # seconds a flood connection waits for the service to let go before giving up
PARTIAL_REQUEST = b"GET /ws/signaling HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for {pid}")


def counters(http_url: str, name: str) -> dict[str, float]:
    with urllib.request.urlopen(f"{http_url}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    return {s.labels.get("reason", ""): s.value for family in text_string_to_metric_families(text)
            for s in family.samples if s.name == name}


async def pinger(client: SignalingClient, rtts: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        started = time.monotonic()
        reply = await client.request({"type": "ping"}, "pong", timeout=10)
        if reply["type"] != "pong":
            raise RuntimeError(f"bystander got {reply}")
        rtts.append(time.monotonic() - started)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.05)


async def idle_upgrade(url: str, outcomes: Counter[str], held_for: list[float]) -> None:
    try:
        ws = await websockets.connect(url, compression=None, open_timeout=20, ping_interval=None,
                                      local_addr=(FLOOD, 0))
    except InvalidStatus as exc:
        outcomes[f"HTTP {exc.response.status_code}"] += 1
        return
    except (OSError, TimeoutError, websockets.WebSocketException) as exc:
        outcomes[f"failed: {type(exc).__name__}"] += 1
        return
    opened = time.monotonic()
    try:
        async with asyncio.timeout(HOLD_LIMIT):
            await ws.wait_closed()
        outcomes[f"upgraded, closed {ws.close_code}"] += 1
        held_for.append(time.monotonic() - opened)
    except TimeoutError:
        outcomes["upgraded, still open at the bound"] += 1
    finally:
        ws.transport.abort()


async def half_open(outcomes: Counter[str], held_for: list[float], port: int) -> None:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(FLOOD, 0))
    except OSError as exc:
        outcomes[f"connect failed: {type(exc).__name__}"] += 1
        return
    opened = time.monotonic()
    try:
        writer.write(PARTIAL_REQUEST)
        async with asyncio.timeout(HOLD_LIMIT):
            while await reader.read(4096):
                pass  # the service answers nothing until the request is complete; EOF when it drops us
        outcomes["dropped by the service"] += 1
        held_for.append(time.monotonic() - opened)
    except TimeoutError:
        outcomes["still open at the bound"] += 1
    except OSError:
        outcomes["reset by the service"] += 1
        held_for.append(time.monotonic() - opened)
    finally:
        writer.transport.abort()


async def bounded(count: int, concurrency: int, make) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            await make()

    await asyncio.gather(*(one() for _ in range(count)))


async def newcomer_join(stack: Stack) -> float:
    started = time.monotonic()
    client = await SignalingClient.connect(stack.ws_url, local_addr=(NEWCOMER, 0))
    reply = await client.join("newcomer", mint(stack.token_key, room="newcomer"), role="subscriber")
    if reply["type"] != "joined":
        raise RuntimeError(f"newcomer: {reply}")
    elapsed = time.monotonic() - started
    await client.close()
    return elapsed


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def flood(stack: Stack, pid: int, args: argparse.Namespace) -> None:
    bystander = await SignalingClient.connect(stack.ws_url, local_addr=(BYSTANDER, 0))
    assert (await bystander.join("calm", mint(stack.token_key, room="calm"), role="subscriber"))["type"] == "joined"
    idle_rss = rss_kib(pid)
    before_refused = counters(stack.http_url, "signaling_protocol_errors_total")
    rtts: list[float] = []
    stop = asyncio.Event()
    ping_task = asyncio.create_task(pinger(bystander, rtts, stop))
    upgrades: Counter[str] = Counter()
    partial: Counter[str] = Counter()
    upgrade_held: list[float] = []
    partial_held: list[float] = []
    started = time.monotonic()

    upgrading = asyncio.create_task(bounded(args.attempts // 2, args.concurrency,
                                            lambda: idle_upgrade(stack.ws_url, upgrades, upgrade_held)))
    await asyncio.sleep(3)  # part of the story: the newcomer arrives while the flood holds its connections
    newcomer = await newcomer_join(stack)
    await upgrading
    upgrade_wall = time.monotonic() - started
    mid = time.monotonic()
    await bounded(args.attempts - args.attempts // 2, args.concurrency,
                  lambda: half_open(partial, partial_held, stack.signaling_port))
    partial_wall = time.monotonic() - mid

    stop.set()
    await ping_task
    await bystander.close()
    peak_rss = rss_kib(pid, "VmHWM")
    after_rss = rss_kib(pid)
    refused = counters(stack.http_url, "signaling_protocol_errors_total")
    auth = counters(stack.http_url, "signaling_auth_failures_total")

    print(f"flood from one source ({FLOOD}): {args.attempts:,} attempts, {args.concurrency:,} in flight at most")
    print(f"  idle upgrades ({args.attempts // 2:,}, {upgrade_wall:.1f} s):")
    for outcome, count in sorted(upgrades.items()):
        print(f"    {outcome:40} {count:>7,}")
    if upgrade_held:
        print(f"    held by the service before 4408: median {statistics.median(upgrade_held):.1f} s, "
              f"max {max(upgrade_held):.1f} s")
    half = args.attempts - args.attempts // 2
    print(f"  half-open TCP, unfinished upgrade request ({half:,}, {partial_wall:.1f} s):")
    for outcome, count in sorted(partial.items()):
        print(f"    {outcome:40} {count:>7,}")
    if partial_held:
        print(f"    held before the service let go: median {statistics.median(partial_held):.1f} s, "
              f"max {max(partial_held):.1f} s")
    print("  the service's count (signaling_protocol_errors_total, this run):")
    for reason in ("address_full", "server_full", "join_timeout"):
        print(f"    {reason:40} {refused.get(reason, 0) - before_refused.get(reason, 0):>7,.0f}")
    print(f"    {'auth failures, throttled':40} {auth.get('throttled', 0):>7,.0f}")
    print(f"signaling RSS: idle {idle_rss / 1024:.1f} MiB, peak {peak_rss / 1024:.1f} MiB (VmHWM), "
          f"after {after_rss / 1024:.1f} MiB")
    print(f"bystander ({BYSTANDER}, joined): {len(rtts):,} pongs, p50 {percentile(rtts, 0.5) * 1000:.1f} ms, "
          f"p99 {percentile(rtts, 0.99) * 1000:.1f} ms, max {max(rtts) * 1000:.1f} ms")
    print(f"newcomer ({NEWCOMER}) during the flood: connected and joined in {newcomer * 1000:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attempts", type=int, default=20_000, help="connection attempts (default: %(default)s)")
    parser.add_argument("--concurrency", type=int, default=3000,
                        help="attempts in flight at once, per kind (default: %(default)s)")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < args.concurrency + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, args.concurrency + 1000), hard))
    with tempfile.TemporaryDirectory(prefix="bench-flood-") as workdir:
        stack = Stack(Path(workdir), node_count=1, signaling_env={"SIGNALING_LOG_LEVEL": "WARNING"})
        stack.start()
        try:
            assert stack.signaling is not None and stack.signaling.pid is not None
            asyncio.run(flood(stack, stack.signaling.pid, args))
        finally:
            stack.stop()


if __name__ == "__main__":
    main()
