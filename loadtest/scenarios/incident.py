"""The 2 AM incident: a least-rooms balancer piles work on the mega-room's node until it melts.

Story (``size`` = mega-room participants; 500 by default, CI runs a smaller one):

1. ``baseline``: placement ``least_rooms``; long-lived quiet rooms (``BASELINE_ROOMS`` per node)
   fill sfu-node-01..03 while sfu-node-04 is briefly drained.
2. ``mega-room``: ``size`` participants join one room (a few video publishers, media subscribers,
   the rest signaling-only); it lands on the emptiest node, sfu-node-04.
3. ``pile-up``: new small rooms keep arriving and ending. ``least_rooms`` counts rooms, not people:
   sfu-node-04 holds one room, so it gets the next ones, and keeps ``BASELINE_ROOMS - 1`` more small
   rooms than each other node from then on. Its Janus saturates its CPU budget (the
   Compose ``cpus:`` limit, a cgroup quota natively); loss rises on its subscribers; NACKs storm.
   ``SFUHighCPU`` and ``SFUNackStorm`` fire for sfu-node-04.
4. ``fix``: switch placement to ``least_handles`` and drain sfu-node-04. New rooms go elsewhere, the
   piled rooms end, the node's CPU falls, loss stops: both alerts resolve.

Loss: on one machine a throttled Janus delays packets more than it drops them (socket buffers on a
veth pair do not overflow the way a saturated host's NIC queues do), so the scenario models the
drop: each subscriber on a node loses ``MAX_LOSS × (cpu_ratio − 0.85) / 0.15`` of its incoming RTP
(0 below 85 % of the budget, SFUHighCPU's threshold), from the node's exporter, updated every 2 s. The NACKs, PLIs and
retransmissions that follow are real.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import urllib.request
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from lab.peers import PacketLoss
from loadtest.bots.fleet import Bot, VideoSettings
from loadtest.scenarios.base import Run, ScenarioFailed

HOT_NODE = "sfu-node-04"
MAX_LOSS = 0.15
LOSS_FROM_RATIO = 0.85  # SFUHighCPU's threshold: no modelled loss below it
ALERTS = ("SFUHighCPU", "SFUNackStorm")
NACK_FLOOR = 20.0  # NACKs/s: SFUNackStorm's absolute floor (prometheus/rules/sfu_alerts.yml)


# Janus CPU measured on this project's 2-core machines: one media subscription (VP8 320x240@15 +
# Opus), one signaling-only participant (session keepalives), one small voice room (1 + 2 people).
CORES_PER_SUBSCRIPTION = 0.0018
CORES_PER_LURKER = 0.00006
CORES_PER_SMALL_ROOM = 0.0045
# At the full size the bots' process saturates its core, media slows, and a piled room costs Janus less.
CORES_PER_SMALL_ROOM_BOT_BOUND = 0.0018
SATURATION = 0.95  # mega-room + the rooms piled on its node ≈ 95 % of the budget, before NACK overhead
BASELINE_ROOMS = 3  # quiet rooms on each of the other nodes


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
        small = size < 200
        return cls(size=size, publishers=publishers, media_subscribers=media,
                   lurkers=max(0, size - publishers - media), pile_interval=5.0 if small else 4.0,
                   room_lifetime=75.0 if small else 150.0, fire_timeout=6 * 60, resolve_timeout=5 * 60)

    @property
    def mega_room_cores(self) -> float:
        return self.publishers * self.media_subscribers * CORES_PER_SUBSCRIPTION + self.lurkers * CORES_PER_LURKER

    @property
    def piled_room_cores(self) -> float:
        """Small rooms on the hot node at steady state: least_rooms evens out room counts, so with N small
        rooms alive the hot node holds (N + 3 (BASELINE_ROOMS - 1)) / 4 of them."""
        per_room = CORES_PER_SMALL_ROOM if self.size < 200 else CORES_PER_SMALL_ROOM_BOT_BOUND
        alive = self.room_lifetime / self.pile_interval
        return (alive + 3 * (BASELINE_ROOMS - 1)) / 4 * per_room


def node_cpus_for(size: int) -> float:
    """The SFU nodes' CPU budget the story is sized for (the stack is started with it): the mega-room
    takes about half of it, the rooms least_rooms piles on top bring it to saturation, and once they are
    gone the node recovers."""
    plan = Plan.for_size(size)
    return round((plan.mega_room_cores + plan.piled_room_cores) / SATURATION, 2)


class LossModel:
    """Turns each node's CPU saturation (read from its exporter) into loss on that node's subscribers."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.losses: dict[str, list[PacketLoss]] = {node: [] for node in run.endpoints.exporters}
        self.ratio: dict[str, float] = {}
        self._last: dict[str, tuple[float, float]] = {}

    def new_loss(self, node: str) -> PacketLoss:
        loss = PacketLoss(self.fraction(node), after=3.0)
        self.losses[node].append(loss)
        return loss

    def fraction(self, node: str) -> float:
        ratio = self.ratio.get(node, 0.0)
        return min(MAX_LOSS, max(0.0, MAX_LOSS * (ratio - LOSS_FROM_RATIO) / (1 - LOSS_FROM_RATIO)))

    def _read(self, url: str) -> tuple[float, float]:
        with urllib.request.urlopen(url, timeout=5) as reply:
            text = reply.read().decode()
        values = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
        return values["sfu_process_cpu_seconds_total"], values["sfu_cpu_budget_cores"]

    async def run_forever(self) -> None:
        while True:
            for node, url in self.run.endpoints.exporters.items():
                with contextlib.suppress(OSError, KeyError, ValueError):
                    cpu, budget = await asyncio.to_thread(self._read, url)
                    now = time.monotonic()
                    if node in self._last:
                        then, cpu_then = self._last[node]
                        self.ratio[node] = (cpu - cpu_then) / (now - then) / budget
                    self._last[node] = (now, cpu)
                    for loss in self.losses[node]:
                        loss.fraction = self.fraction(node)
            await asyncio.sleep(2)


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
    live_rooms: list[tuple[float, list[Bot], str | None]] = []
    try:
        await run.admin_async("PUT", "/admin/placement", {"policy": "least_rooms"})
        for node in nodes:
            await run.admin_async("DELETE", f"/admin/nodes/{node}/drain")
        run.phase("baseline", policy="least_rooms", quiet_rooms=BASELINE_ROOMS * (len(nodes) - 1))
        await run.admin_async("POST", f"/admin/nodes/{HOT_NODE}/drain")
        for index in range(BASELINE_ROOMS * (len(nodes) - 1)):
            await run.fleet.lurkers(f"base-{index}", 1)
            placed[f"base-{index}"] = await run.room_node(f"base-{index}")
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

        async def pile(stop: asyncio.Event) -> None:
            serial = 0
            while not stop.is_set():
                serial += 1
                name = f"pile-{serial}"
                bots, node = await small_room(run, model, name)
                placed[name] = node
                live_rooms.append((time.monotonic() + plan.room_lifetime, bots, node))
                for entry in [r for r in live_rooms if r[0] < time.monotonic()]:
                    live_rooms.remove(entry)
                    await run.fleet.release(entry[1])
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), plan.pile_interval)

        run.phase("pile-up", interval_s=plan.pile_interval, room_lifetime_s=plan.room_lifetime)
        stop_piling = asyncio.Event()
        background.append(asyncio.create_task(pile(stop_piling)))
        fired = {alert: await run.wait_firing(alert, HOT_NODE, plan.fire_timeout) for alert in ALERTS}
        under_least_rooms = [room for room, node in placed.items() if room.startswith("pile-") and node == HOT_NODE]
        run.facts.update(fired_at=fired, new_rooms_on_hot_node_under_least_rooms=len(under_least_rooms),
                         new_rooms_under_least_rooms=sum(1 for r in placed if r.startswith("pile-")))
        if not under_least_rooms:
            raise ScenarioFailed(f"{HOT_NODE} received no new room under least_rooms")

        run.phase("fix", policy="least_handles", drained=HOT_NODE)
        await run.admin_async("PUT", "/admin/placement", {"policy": "least_handles"})
        await run.admin_async("POST", f"/admin/nodes/{HOT_NODE}/drain")
        before_fix = set(placed)
        resolved = {alert: await run.wait_resolved(alert, HOT_NODE, plan.resolve_timeout) for alert in ALERTS}
        await run.wait_for(f"the NACK rate of {HOT_NODE} falls under the alert's floor",
                           lambda: _below(run, f'sum(rate(sfu_nacks_total{{node="{HOT_NODE}"}}[1m]))', NACK_FLOOR),
                           plan.resolve_timeout)
        after_fix = [room for room in placed if room not in before_fix and placed[room] == HOT_NODE]
        run.facts.update(resolved_at=resolved, new_rooms_on_hot_node_after_fix=len(after_fix))
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
