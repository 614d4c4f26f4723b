"""The 2 AM incident: a least-rooms balancer piles work on the mega-room's node until it melts.

Story (``size`` = mega-room participants; 500 by default, CI runs a smaller one):

1. ``baseline``: placement ``least_rooms``; sfu-node-04 is back from maintenance (drained while the
   baseline fills the others): each of sfu-node-01..03 holds one voice room and ``QUIET_ROOMS`` quiet
   ones (signaling-only participants, next to no media work).
2. ``mega-room``: ``size`` participants join one room (a few video publishers, media subscribers,
   the rest signaling-only); it lands on the emptiest node by room count, sfu-node-04.
3. ``pile-up``: new small rooms keep arriving and ending. ``least_rooms`` counts rooms, not people:
   sfu-node-04 holds one room, however big, so it gets the next ``QUIET_ROOMS`` new rooms outright
   and its share of every later one. Its Janus saturates its CPU budget (the
   Compose ``cpus:`` limit, a cgroup quota natively); loss rises on its subscribers; NACKs storm.
   ``SFUHighCPU`` and ``SFUNackStorm`` fire for sfu-node-04.
4. ``fix``: switch placement to ``least_handles`` and drain sfu-node-04. New rooms go elsewhere, the
   piled rooms end, the node's CPU falls, loss stops: both alerts resolve, and its NACK rate falls
   under the alert's floor.

Loss is physical: each SFU node's RTP leaves through a link of its own (``janus_node.link``: an htb
class of ``link_kbit_for(size)`` kbit/s with a bounded bfifo queue; natively one class per node on the
lab namespace's veth end, matched by the node's RTP port range; in Compose the pod's ``eth0``). The
mega-room alone fits its link; with the rooms piled on top the offered RTP exceeds it, the queue
fills and drops, the subscribers NACK, Janus's retransmissions go out through the same full link.
The scenario sets no loss: it records, for the hot node, the link's drops, the NACK and the
retransmission rates over time (``facts["hot_node_chain"]``), read back from Prometheus.

Calibration (2-core machines). CPU, measured with budgets too large to throttle: an idle Janus costs
0.003 core, a voice room 0.01, the CI-sized mega-room 0.05, the full one 0.078 (81-84 % of 0.12
after the fix, hence 0.14). With 12 small rooms alive the hot node holds about 5 of them before the
fix (3 outright, then a quarter), each other node 2, and 4 after the fix. Link (CI size, measured):
the mega-room alone sends 4.5 Mbit/s (14 subscriptions, ~0.32 Mbit/s each, audio more than half of
the bytes), each voice room ~0.27 Mbit/s, so the hot node offers ~6.0 Mbit/s with its 5-6 piled
rooms. Each size's link is its mega-room alone + 1.3 Mbit/s (about five voice rooms): 5800 at CI
size (measured: 7.5 % dropped during the pile-up, none after the fix); 9000 at full size, from 24
subscriptions x 0.32 Mbit/s (measured: the mega-room alone 7.3 Mbit/s, 7.8 % dropped during the
pile-up at 9.5 Mbit/s offered, none after the fix). docs/loadtest.md, "The spiral as measured".
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

from loadtest.bots.fleet import Bot, VideoSettings
from loadtest.scenarios.base import Run, ScenarioFailed
from sfu_stack.prom import get_json

HOT_NODE = "sfu-node-04"
QUIET_ROOMS = 3  # per other node, beside its voice room
ALERTS = ("SFUHighCPU", "SFUNackStorm")
NACK_FLOOR = 20.0  # NACKs/s: SFUNackStorm's absolute floor (prometheus/rules/sfu_alerts.yml)
CHAIN_STEP_S = 10  # resolution of the recorded chain (link drops, NACKs, retransmissions)
CHAIN_WINDOW = "30s"  # rate() window of the chain: two of Prometheus's 15 s scrapes


# The SFU nodes' CPU budget and media link per story size (docs/loadtest.md: the mega-room alone stays
# under SFUHighCPU's 85 % and inside its link; the rooms least_rooms piles on top saturate both).
# CI size: 2 x 7 subscriptions, 51 lurkers; full size: 2 x 12 subscriptions, 486 lurkers.
CALIBRATED_BUDGETS = ((200, 0.08), (10**9, 0.14))  # (sizes below, cores per node)
CALIBRATED_LINKS = ((200, 5800), (10**9, 9000))  # (sizes below, kbit/s per node): mega-room alone + 1.3 Mbit/s


@dataclass(frozen=True)
class Plan:
    """Everything the story's size decides."""

    size: int
    publishers: int
    media_subscribers: int
    lurkers: int
    pile_interval: float
    room_lifetime: float
    fire_timeout: float
    resolve_timeout: float

    @classmethod
    def for_size(cls, size: int) -> Plan:
        publishers = 2
        media = max(6, min(12, size // 40 if size >= 200 else 7))
        return cls(size=size, publishers=publishers, media_subscribers=media,
                   lurkers=max(0, size - publishers - media), pile_interval=4.0,
                   room_lifetime=48.0, fire_timeout=6 * 60, resolve_timeout=5 * 60)


def node_cpus_for(size: int) -> float:
    """The SFU nodes' CPU budget the story is sized for (the stack is started with it)."""
    return next(cores for below, cores in CALIBRATED_BUDGETS if size < below)


def link_kbit_for(size: int) -> int:
    """Each SFU node's media link (kbit/s) the story is sized for (the stack is started with it)."""
    return next(kbit for below, kbit in CALIBRATED_LINKS if size < below)


CHAIN = {  # what the hot node's chain records, one PromQL rate each (node-labelled series)
    "link_sent_kbit_per_s": f'8 * rate(sfu_link_sent_bytes_total{{node="{HOT_NODE}"}}[{CHAIN_WINDOW}]) / 1000',
    "link_drops_per_s": f'rate(sfu_link_dropped_packets_total{{node="{HOT_NODE}"}}[{CHAIN_WINDOW}])',
    "nacks_per_s": f'sum(rate(sfu_nacks_total{{node="{HOT_NODE}",direction="received"}}[{CHAIN_WINDOW}]))',
    "retransmissions_per_s": f'sum(rate(bot_retransmissions_received_total{{node="{HOT_NODE}"}}[{CHAIN_WINDOW}]))',
}


async def record_chain(run: Run) -> list[dict[str, float]]:
    """The hot node's link, NACK and retransmission rates over the run, from Prometheus (every 10 s)."""
    end = time.time()
    series: dict[float, dict[str, float]] = {}
    for key, promql in CHAIN.items():
        answer = await asyncio.to_thread(get_json, f"{run.endpoints.prometheus}/api/v1/query_range", query=promql,
                                         start=f"{run.started_wall:.0f}", end=f"{end:.0f}", step=f"{CHAIN_STEP_S}")
        for result in answer["data"]["result"][:1]:
            for at, value in result["values"]:
                series.setdefault(round(float(at) - run.started_wall), {})[key] = round(float(value), 2)
    return [{"at": at, **values} for at, values in sorted(series.items())]


LINK_KBIT = f'8 * sfu_link_capacity_bytes_per_second{{node="{HOT_NODE}"}} / 1000'
SPIRAL = {  # each phase's totals on the hot node, over a window [{d}s] ending at the phase's end
    "rooms": f'avg_over_time(sfu_rooms_active{{node="{HOT_NODE}"}}[{{d}}s])',
    "cpu_share_of_budget": f'avg_over_time(instance:sfu_process_cpu:budget_ratio_rate1m{{node="{HOT_NODE}"}}[{{d}}s])',
    "link_kbit": LINK_KBIT,
    "sent_bytes": f'increase(sfu_link_sent_bytes_total{{node="{HOT_NODE}"}}[{{d}}s])',
    "sent_packets": f'increase(sfu_link_sent_packets_total{{node="{HOT_NODE}"}}[{{d}}s])',
    "dropped_packets": f'increase(sfu_link_dropped_packets_total{{node="{HOT_NODE}"}}[{{d}}s])',
    "nacks": f'sum(increase(sfu_nacks_total{{node="{HOT_NODE}",direction="received"}}[{{d}}s]))',
    "retransmissions": f'sum(increase(bot_retransmissions_received_total{{node="{HOT_NODE}"}}[{{d}}s]))',
}


async def spiral(run: Run, start: float, end: float) -> dict[str, float]:
    """The hot node's link between ``start`` and ``end`` (seconds into the run), as docs/loadtest.md's
    table shows it: offered load (sent + dropped packets at the mean packet size) against the link,
    drop %, NACKs/s, retransmissions/s and goodput (sent minus the retransmissions the bots received)."""
    seconds = max(1, round(end - start))
    got = {key: next(iter((await run.query(promql.replace("{d}", str(seconds)), at=run.started_wall + end))
                          .values()), 0.0)
           for key, promql in SPIRAL.items()}
    sent_kbit = 8 * got["sent_bytes"] / seconds / 1000
    packets = got["sent_packets"] + got["dropped_packets"]
    mean_kbit = sent_kbit / got["sent_packets"] if got["sent_packets"] else 0.0  # per packet per second
    return {"from_s": round(start), "to_s": round(end), "rooms": round(got["rooms"], 1),
            "cpu_share_of_budget": round(got["cpu_share_of_budget"], 2), "link_kbit": round(got["link_kbit"]),
            "offered_kbit_per_s": round(mean_kbit * packets), "sent_kbit_per_s": round(sent_kbit),
            "dropped_percent": round(100 * got["dropped_packets"] / packets, 1) if packets else 0.0,
            "drops_per_s": round(got["dropped_packets"] / seconds, 1), "nacks_per_s": round(got["nacks"] / seconds, 1),
            "retransmissions_per_s": round(got["retransmissions"] / seconds, 1),
            "goodput_kbit_per_s": round(mean_kbit * (got["sent_packets"] - got["retransmissions"]))}


async def watch_chain(run: Run) -> None:
    """Print the hot node's chain every 10 s: link load vs capacity, drops, NACKs, retransmissions."""
    while True:
        await asyncio.sleep(CHAIN_STEP_S)
        with contextlib.suppress(OSError, RuntimeError, ValueError):
            values = {key: (await run.query(promql)) for key, promql in CHAIN.items()}
            capacity = await run.query(LINK_KBIT)
            shown = {key: next(iter(v.values()), 0.0) for key, v in values.items()}
            run.echo(f"[{run.clock()}]   {HOT_NODE} link {shown['link_sent_kbit_per_s']:6.0f}/"
                     f"{next(iter(capacity.values()), 0.0):.0f} kbit/s, {shown['link_drops_per_s']:5.1f} drops/s, "
                     f"{shown['nacks_per_s']:5.1f} NACKs/s, {shown['retransmissions_per_s']:5.1f} rtx/s")


async def _below(run: Run, promql: str, limit: float) -> bool:
    with contextlib.suppress(OSError, RuntimeError):
        values = await run.query(promql)
        return bool(values) and all(v < limit for v in values.values())
    return False


async def small_room(run: Run, name: str) -> tuple[list[Bot], str | None]:
    """A voice room: one audio publisher and two subscribers; returns its bots and its node."""
    publisher = await run.fleet.publishers(name, 1, VideoSettings(width=64, height=48, fps=1, audio=True))
    node = await run.room_node(name)
    subscribers = await run.fleet.subscribers(name, 2, node=node)
    return [*publisher, *subscribers], node


async def run_incident(run: Run) -> None:
    plan = Plan.for_size(run.size)
    nodes = sorted(run.endpoints.exporters)
    background = [asyncio.create_task(watch_chain(run))]
    placed: dict[str, str | None] = {}
    opened_at: dict[str, float] = {}  # when each piled room's first participant started to join
    live_rooms: list[tuple[float, list[Bot], str | None]] = []
    try:
        await run.admin_async("PUT", "/admin/placement", {"policy": "least_rooms"})
        for node in nodes:
            await run.admin_async("DELETE", f"/admin/nodes/{node}/drain")
        others = len(nodes) - 1
        run.phase("baseline", policy="least_rooms", drained=HOT_NODE, voice_rooms=others,
                  quiet_rooms=QUIET_ROOMS * others)
        await run.admin_async("POST", f"/admin/nodes/{HOT_NODE}/drain")
        for index in range(others):  # least_rooms breaks ties in node order: one voice room each
            _, placed[f"voice-{index}"] = await small_room(run, f"voice-{index}")
        for index in range(QUIET_ROOMS * others):
            await run.fleet.lurkers(f"quiet-{index}", 2)
            placed[f"quiet-{index}"] = await run.room_node(f"quiet-{index}")
        await run.admin_async("DELETE", f"/admin/nodes/{HOT_NODE}/drain")
        run.phase("mega-room", participants=plan.size, publishers=plan.publishers,
                  media_subscribers=plan.media_subscribers, lurkers=plan.lurkers)
        await run.fleet.publishers("mega", plan.publishers)
        mega_node = await run.room_node("mega")
        await run.fleet.subscribers("mega", plan.media_subscribers, feeds=plan.publishers, node=mega_node)
        await run.fleet.lurkers("mega", plan.lurkers)
        run.facts["mega_room_node"] = mega_node
        run.echo(f"[{run.clock()}]   mega-room on {mega_node}")
        if mega_node != HOT_NODE:
            raise ScenarioFailed(f"the mega-room landed on {mega_node}, not {HOT_NODE}: the baseline did not "
                                 "fill the other nodes first (is another room open on the stack?)")

        serial = 0

        async def open_room() -> str | None:
            nonlocal serial
            serial += 1
            name = f"pile-{serial}"
            opened_at[name] = time.monotonic()
            bots, node = await small_room(run, name)
            placed[name] = node
            live_rooms.append((time.monotonic() + plan.room_lifetime, bots, node))
            return node

        async def pile(stop: asyncio.Event) -> None:
            while not stop.is_set():
                await open_room()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), plan.pile_interval)

        async def end_rooms() -> None:
            """Rooms end when their time is up, during the pile-up and after it."""
            while True:
                for entry in [r for r in live_rooms if r[0] < time.monotonic()]:
                    live_rooms.remove(entry)
                    await run.fleet.release(entry[1])
                await asyncio.sleep(1)

        background.append(asyncio.create_task(end_rooms()))

        run.phase("pile-up", interval_s=plan.pile_interval, room_lifetime_s=plan.room_lifetime)
        stop_piling = asyncio.Event()
        background.append(asyncio.create_task(pile(stop_piling)))
        fired = {alert: await run.wait_firing(alert, HOT_NODE, plan.fire_timeout) for alert in ALERTS}
        for alert in ALERTS:
            await run.wait_notified(alert, HOT_NODE)
        under_least_rooms = [room for room, node in placed.items() if room.startswith("pile-") and node == HOT_NODE]
        run.facts.update(fired_at=fired, new_rooms_on_hot_node_under_least_rooms=len(under_least_rooms),
                         new_rooms_under_least_rooms=sum(1 for r in placed if r.startswith("pile-")))
        if not under_least_rooms:
            raise ScenarioFailed(f"{HOT_NODE} received no new room under least_rooms")

        run.phase("fix", policy="least_handles", drained=HOT_NODE)
        await run.admin_async("PUT", "/admin/placement", {"policy": "least_handles"})
        await run.admin_async("POST", f"/admin/nodes/{HOT_NODE}/drain")
        fixed_at = time.monotonic()  # a room whose join started before this may still land on the node
        resolved = {alert: await run.wait_resolved(alert, HOT_NODE, plan.resolve_timeout) for alert in ALERTS}
        await run.wait_for(f"the NACK rate of {HOT_NODE} falls under the alert's floor",
                           lambda: _below(run, f'sum(rate(sfu_nacks_total{{node="{HOT_NODE}"}}[1m]))', NACK_FLOOR),
                           plan.resolve_timeout)
        await run.wait_for(f"the link of {HOT_NODE} drops nothing any more (30 s)",
                           lambda: _below(run, CHAIN["link_drops_per_s"], 0.01), plan.resolve_timeout)
        after_fix = [room for room, at in opened_at.items() if at > fixed_at and placed.get(room) == HOT_NODE]
        run.facts.update(resolved_at=resolved, new_rooms_on_hot_node_after_fix=len(after_fix),
                         new_rooms_after_fix=sum(1 for at in opened_at.values() if at > fixed_at))
        if after_fix:
            raise ScenarioFailed(f"{HOT_NODE} still received {len(after_fix)} rooms after the fix")
        run.forbid(ALERTS, [n for n in nodes if n != HOT_NODE])
        window = f"{int(run.elapsed()) + 60}s"
        peak = await run.query(f"max_over_time(instance:sfu_process_cpu:budget_ratio_rate1m[{window}])")
        run.facts["peak_cpu_share_of_budget"] = {node: round(v, 2) for node, v in sorted(peak.items())}
        run.facts["node_budget_cores"] = (await run.query("sfu_cpu_budget_cores")).get(HOT_NODE)
        run.facts["link_dropped_packets"] = {node: int(v) for node, v in sorted(
            (await run.query("sfu_link_dropped_packets_total")).items())}
        run.facts["node_link_kbit"] = round(next(iter((await run.query(LINK_KBIT)).values()), 0))
        stop_piling.set()
        pile_up = next(p["at"] for p in run.phases if p["phase"] == "pile-up")
        fix, done = next(p["at"] for p in run.phases if p["phase"] == "fix"), run.elapsed()
        with contextlib.suppress(OSError, RuntimeError, ValueError):
            run.facts["spiral"] = {"pile_up": await spiral(run, pile_up + CHAIN_STEP_S, fix),
                                   "after_fix": await spiral(run, min(fix + plan.room_lifetime, done - 20), done)}
        run.phase("done")
    finally:
        with contextlib.suppress(OSError, ValueError, KeyError):
            run.facts["hot_node_chain"] = await record_chain(run)
        for task in background:
            task.cancel()
        for task in background:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await run.admin_async("DELETE", f"/admin/nodes/{HOT_NODE}/drain")
