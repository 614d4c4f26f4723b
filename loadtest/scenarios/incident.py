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

Loss: on one machine a throttled Janus delays packets more than it drops them (socket buffers on a
veth pair do not overflow the way a saturated host's NIC queues do), so the scenario models the
drop: each subscriber on a node loses ``MAX_LOSS × (cpu_ratio − 0.85) / 0.10`` of its incoming RTP
(0 below 85 % of the budget, SFUHighCPU's threshold; all of ``MAX_LOSS`` from 95 %, where a throttled
Janus reads), from Prometheus, updated every 5 s. The NACKs, PLIs and retransmissions that follow are real.

Calibration (measured on this project's 2-core machines with budgets too large to throttle): an idle
Janus costs 0.003 core, a voice room 0.01; the CI-sized mega-room 0.05 core (15 % loss adds little);
the full one 0.078, and 0.11 with 15 % loss (24 lossy subscriptions NACK at ~160/s); once the bots
stopped decoding on a thread per track (no longer CPU-bound), the full mega-room alone read 81-84 % of
0.12 core after the fix, hence 0.14. With 12 small rooms
alive (lifetime / interval) the hot node holds about 5 of them before the fix (3 outright, then a
quarter), each other node 2, and 4 after the fix. The budgets put the mega-room alone near two thirds
of a node (at full loss without piled rooms still under 95 %, so the spiral cannot hold the node once
its piled rooms end), the hot node before the fix above its whole budget, and each other node after
the fix near 60 %.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

from loadtest.bots.fleet import Bot, VideoSettings
from loadtest.bots.peers import PacketLoss
from loadtest.scenarios.base import Run, ScenarioFailed

HOT_NODE = "sfu-node-04"
QUIET_ROOMS = 3  # per other node, beside its voice room
MAX_LOSS = 0.15
LOSS_FROM_RATIO = 0.85  # SFUHighCPU's threshold: no modelled loss below it
FULL_LOSS_AT_RATIO = 0.95  # a Janus throttled at its quota reads 0.93-0.96 of its budget
ALERTS = ("SFUHighCPU", "SFUNackStorm")
NACK_FLOOR = 20.0  # NACKs/s: SFUNackStorm's absolute floor (prometheus/rules/sfu_alerts.yml)


# The SFU nodes' CPU budget per story size (see Calibration above): the mega-room alone stays well under
# SFUHighCPU's 85 %, and the rooms least_rooms piles on top saturate it. CI size: 2 x 7 subscriptions,
# 51 lurkers; full size: 2 x 12 subscriptions, 486 lurkers.
CALIBRATED_BUDGETS = ((200, 0.08), (10**9, 0.14))  # (sizes below, cores per node)


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


class LossModel:
    """Turns each node's CPU saturation (read from its exporter) into loss on that node's subscribers."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.losses: dict[str, list[PacketLoss]] = {node: [] for node in run.endpoints.exporters}
        self.ratio: dict[str, float] = {}

    def new_loss(self, node: str) -> PacketLoss:
        loss = PacketLoss(self.fraction(node), after=3.0)
        self.losses[node].append(loss)
        return loss

    def fraction(self, node: str) -> float:
        ratio = self.ratio.get(node, 0.0)
        return min(MAX_LOSS, max(0.0, MAX_LOSS * (ratio - LOSS_FROM_RATIO) / (FULL_LOSS_AT_RATIO - LOSS_FROM_RATIO)))

    async def run_forever(self) -> None:
        """Follow each node's CPU share of its budget from Prometheus's recording rule. (Scraping the
        exporters every few seconds instead would make each Janus answer Admin API sweeps: on a budget of
        a few hundredths of a core that observer load alone is a quarter of it.)"""
        while True:
            with contextlib.suppress(OSError, RuntimeError, ValueError):
                self.ratio.update(await self.run.query("instance:sfu_process_cpu:budget_ratio_rate1m"))
                for node, losses in self.losses.items():
                    for loss in losses:
                        loss.fraction = self.fraction(node)
            await asyncio.sleep(5)


async def _below(run: Run, promql: str, limit: float) -> bool:
    with contextlib.suppress(OSError, RuntimeError):
        values = await run.query(promql)
        return bool(values) and all(v < limit for v in values.values())
    return False


async def small_room(run: Run, model: LossModel, name: str) -> tuple[list[Bot], str | None]:
    """A voice room: one audio publisher and two subscribers; returns its bots and its node."""
    publisher = await run.fleet.publishers(name, 1, VideoSettings(width=64, height=48, fps=1, audio=True))
    node = await run.room_node(name)
    subscribers = await run.fleet.subscribers(name, 2, loss=lambda: model.new_loss(node or ""))
    return [*publisher, *subscribers], node


async def run_incident(run: Run) -> None:
    plan = Plan.for_size(run.size)
    nodes = sorted(run.endpoints.exporters)
    model = LossModel(run)
    background = [asyncio.create_task(model.run_forever())]
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
            _, placed[f"voice-{index}"] = await small_room(run, model, f"voice-{index}")
        for index in range(QUIET_ROOMS * others):
            await run.fleet.lurkers(f"quiet-{index}", 2)
            placed[f"quiet-{index}"] = await run.room_node(f"quiet-{index}")
        await run.admin_async("DELETE", f"/admin/nodes/{HOT_NODE}/drain")
        run.phase("mega-room", participants=plan.size, publishers=plan.publishers,
                  media_subscribers=plan.media_subscribers, lurkers=plan.lurkers)
        await run.fleet.publishers("mega", plan.publishers)
        mega_node = await run.room_node("mega")
        await run.fleet.subscribers("mega", plan.media_subscribers, feeds=plan.publishers,
                                    loss=lambda: model.new_loss(mega_node or ""))
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
            bots, node = await small_room(run, model, name)
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
        stop_piling.set()
        run.phase("done")
    finally:
        for task in background:
            task.cancel()
        for task in background:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await run.admin_async("DELETE", f"/admin/nodes/{HOT_NODE}/drain")
