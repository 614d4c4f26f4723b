"""What every scenario shares: the stack's endpoints, bots, a live timeline, alert watching, a result.

A scenario runs against a running stack (natively ``lab up``; in Compose the ``load`` profile)
through a ``StackControl`` (``sfu_stack.control``): its ``Endpoints``, and what can be done to its
SFU nodes (kill, restart, CPU limits), whichever runner it is on. ``Run`` holds the bots' fleet
and metrics (served on ``/metrics`` for
Prometheus's ``loadtest_bots`` job), prints a timeline (phases, per-node handles / CPU / NACK rate
every ``report_every`` s, alerts as they fire and resolve) and collects a JSON result. A scenario
names the alerts it expects; ``Run.expect`` fails loudly when one did not fire or resolve in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import start_http_server

from loadtest.bots.fleet import Fleet
from loadtest.bots.metrics import BotMetrics
from sfu_stack.control import Endpoints, StackControl
from sfu_stack.prom import get_json, query
from sfu_stack.readiness import NotReady, wait_until_async
from signaling.tokens import mint

WATCHED_ALERTS = ("SFUHighCPU", "SFUNackStorm", "SFUSilentFailure", "JanusDown", "TargetDown",
                  "SignalingAuthFailureSpike", "SignalingJoinLatencyHigh", "SignalingIceLatencyHigh",
                  "SFUAdminApiSlow", "JanusExporterScrapeSlow", "SignalingEventLoopLag", "HostHighCPU")


class ScenarioFailed(AssertionError):
    """An expected alert did not fire or resolve in time, or an unexpected one fired."""


@dataclass
class AlertSpan:
    alertname: str
    node: str
    fired_at: float | None = None  # seconds since the scenario started
    resolved_at: float | None = None


class Run:
    """One scenario run: bots, timeline, alert spans, phases."""

    def __init__(self, name: str, stack: StackControl, *, size: int, out: Path | None = None,
                 report_every: float = 10.0, echo: Callable[[str], None] = print,
                 endpoints: Endpoints | None = None) -> None:
        self.name, self.stack, self.size, self.out = name, stack, size, out
        self.endpoints = endpoints or stack.endpoints()
        self.registry = CollectorRegistry()
        self.metrics = BotMetrics(self.registry)
        key = self.endpoints.token_key
        self.fleet = Fleet(self.endpoints.signaling_ws, lambda room, user: mint(key, room=room, user=user),
                           self.metrics)
        self.started = time.monotonic()
        self.started_wall = time.time()
        self.phases: list[dict[str, Any]] = []
        self.spans: dict[tuple[str, str], AlertSpan] = {}
        self.facts: dict[str, Any] = {}
        self.report_every = report_every
        self.echo = echo
        self._tasks: list[asyncio.Task[None]] = []
        self._http: Any = None

    # ---- life cycle --------------------------------------------------------------------------------
    async def __aenter__(self) -> Run:
        host, port = self.endpoints.bots_metrics
        self._http, _ = start_http_server(port, addr=host, registry=self.registry)
        self._tasks = [asyncio.create_task(self._watch_alerts()), asyncio.create_task(self._report())]
        self.echo(f"[{self.clock()}] scenario {self.name} (size {self.size}) starts")
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.fleet.close()
        if self._http is not None:
            self._http.shutdown()
        self.echo(f"[{self.clock()}] scenario {self.name} ends; bots closed")

    def clock(self) -> str:
        seconds = int(self.elapsed())
        return f"+{seconds // 60:02d}:{seconds % 60:02d}"

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def phase(self, name: str, **details: Any) -> None:
        self.phases.append({"phase": name, "at": round(self.elapsed(), 1), **details})
        extra = " ".join(f"{k}={v}" for k, v in details.items())
        self.echo(f"[{self.clock()}] phase {name} {extra}".rstrip())

    # ---- the stack ---------------------------------------------------------------------------------
    def admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        request = urllib.request.Request(self.endpoints.signaling_admin + path, method=method,
                                         data=json.dumps(body).encode() if body is not None else None,
                                         headers={"Authorization": f"Bearer {self.endpoints.admin_token}",
                                                  "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as reply:
            return json.load(reply)

    async def admin_async(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        return await asyncio.to_thread(self.admin, method, path, body)

    async def act(self, action: Callable[..., Any], *args: Any) -> Any:
        """Call one of the stack's (blocking) ``StackControl`` methods from the event loop."""
        return await asyncio.to_thread(action, *args)

    async def room_node(self, room: str) -> str | None:
        return (await self.admin_async("GET", "/admin/placement"))["rooms"].get(room)

    async def query(self, promql: str, at: float | None = None) -> dict[str, float]:
        """An instant query (now, or at the Unix time ``at``) as {node or instance or '': value}."""
        result = await asyncio.to_thread(query, self.endpoints.prometheus, promql, at)
        return {s["metric"].get("node") or s["metric"].get("instance", ""): float(s["value"][1]) for s in result}

    # ---- watching ----------------------------------------------------------------------------------
    async def _watch_alerts(self) -> None:
        while True:
            with contextlib.suppress(OSError, ValueError, KeyError):
                answer = await asyncio.to_thread(get_json, f"{self.endpoints.prometheus}/api/v1/alerts")
                firing = {(a["labels"]["alertname"], a["labels"].get("node") or a["labels"].get("instance", ""))
                          for a in answer["data"]["alerts"] if a["state"] == "firing"}
                now = round(self.elapsed(), 1)
                for key in firing:
                    span = self.spans.get(key)
                    if span is None or span.resolved_at is not None:
                        self.spans[key] = AlertSpan(*key, fired_at=now)
                        self.echo(f"[{self.clock()}] ALERT FIRING   {key[0]} {key[1]}")
                for key, span in self.spans.items():
                    if key not in firing and span.resolved_at is None:
                        span.resolved_at = now
                        self.echo(f"[{self.clock()}] alert resolved {key[0]} {key[1]}")
            await asyncio.sleep(2)

    async def _report(self) -> None:
        while True:
            await asyncio.sleep(self.report_every)
            with contextlib.suppress(OSError, ValueError, RuntimeError):
                handles = await self.query("sfu_active_handles")
                cpu = await self.query("instance:sfu_process_cpu:budget_ratio_rate1m")
                nacks = await self.query('sum by (node) (rate(sfu_nacks_total{job="sfu_nodes"}[1m]))')
                cells = [f"{node[-2:]}: {handles.get(node, 0):4.0f}h {100 * cpu.get(node, 0):4.0f}% "
                         f"{nacks.get(node, 0):5.1f}n/s" for node in sorted(self.endpoints.exporters)]
                self.echo(f"[{self.clock()}]   nodes  " + " | ".join(cells))

    def span(self, alertname: str, node: str | None = None) -> AlertSpan | None:
        """The latest span of ``alertname`` (for ``node``, or for any target when None)."""
        found = [s for (a, n), s in self.spans.items() if a == alertname and (node is None or n == node)]
        return found[-1] if found else None

    async def wait_for(self, what: str, check: Callable[[], bool | Awaitable[bool]], timeout: float,
                       interval: float = 2.0) -> float:
        """Poll ``check`` until true; return when (scenario seconds); raise ``ScenarioFailed`` after
        ``timeout`` (times the endpoints' ``timeout_scale``)."""
        timeout *= self.endpoints.timeout_scale
        try:
            await wait_until_async(check, timeout=timeout, what=what, interval=interval)
        except NotReady as exc:
            raise ScenarioFailed(f"{what}: not within {timeout:.0f} s") from exc
        self.echo(f"[{self.clock()}] ok: {what}")
        return self.elapsed()

    async def wait_firing(self, alertname: str, node: str | None, timeout: float) -> float:
        await self.wait_for(f"{alertname} fires for {node or 'the stack'}",
                            lambda: (s := self.span(alertname, node)) is not None and s.fired_at is not None,
                            timeout)
        return self.span(alertname, node).fired_at  # type: ignore[union-attr]

    async def wait_resolved(self, alertname: str, node: str | None, timeout: float) -> float:
        await self.wait_for(f"{alertname} resolves for {node or 'the stack'}",
                            lambda: (s := self.span(alertname, node)) is not None and s.resolved_at is not None,
                            timeout)
        return self.span(alertname, node).resolved_at  # type: ignore[union-attr]

    def forbid(self, alertnames: tuple[str, ...], nodes: list[str]) -> None:
        """Fail when any of ``alertnames`` fired for any of ``nodes``."""
        wrong = [f"{a} {n}" for (a, n) in self.spans if a in alertnames and n in nodes]
        if wrong:
            raise ScenarioFailed(f"alerts fired where they should not: {', '.join(wrong)}")

    async def sink_notifications(self, alertname: str) -> list[dict[str, Any]]:
        answer = await asyncio.to_thread(get_json, f"{self.endpoints.alert_sink}/alerts", alertname=alertname)
        return list(answer["notifications"])

    async def wait_notified(self, alertname: str, node: str, status: str = "firing",
                            timeout: float = 120) -> float | None:
        """Wait until Alertmanager has delivered ``alertname`` for ``node`` with ``status`` to the sink
        (the firing one comes after the route's group_wait); record when in the facts (None: not within
        ``timeout``). It does not fail the scenario: an Alertmanager that keeps its notification log
        from an earlier run within the route's repeat_interval rightly sends nothing new."""
        async def arrived() -> bool:
            with contextlib.suppress(OSError, ValueError, KeyError):
                return any(a["status"] == status and a["labels"].get("node") == node
                           for n in await self.sink_notifications(alertname) for a in n["alerts"])
            return False

        at: float | None
        try:
            at = round(await self.wait_for(f"the sink received {alertname} {status} for {node} through "
                                           "Alertmanager", arrived, timeout), 1)
        except ScenarioFailed as exc:
            self.echo(f"[{self.clock()}]   note: {exc} (an earlier run's notification within the "
                      "repeat interval suppresses a new one)")
            at = None
        self.facts.setdefault("sink_notified_at", {})[f"{alertname} {status}"] = at
        return at

    # ---- result ------------------------------------------------------------------------------------
    def result(self, ok: bool, error: str | None = None) -> dict[str, Any]:
        self.facts["bots_cpu_share_of_a_core"] = round(time.process_time() / max(self.elapsed(), 1e-9), 3)
        return {
            "scenario": self.name, "runner": self.stack.runner, "size": self.size, "ok": ok, "error": error,
            "started_at": self.started_wall, "ended_at": time.time(),
            "phases": self.phases, "alerts": [asdict(s) for s in self.spans.values()], "facts": self.facts,
        }

    def save(self, result: dict[str, Any]) -> Path | None:
        if self.out is None:
            return None
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.out.write_text(json.dumps(result, indent=1))
        return self.out
