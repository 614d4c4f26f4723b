"""Scenarios (``lab scenario NAME``): incident, silent-failure, node-down, auth-storm.

Each entry names the coroutine that tells the story, the default size (the one knob: the incident's
mega-room participants; CI runs a smaller size of the same story), and the SFU nodes' CPU budget and
media link (kbit/s) the stack must run with for that size (None: any).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from loadtest.scenarios.base import Run


@dataclass(frozen=True)
class Scenario:
    name: str
    run: Callable[[Run], Awaitable[None]]
    default_size: int
    node_cpus: Callable[[int], float | None]  # None: any budget will do
    summary: str
    link_kbit: Callable[[int], int | None] = lambda size: None  # None: any link (shaped or not) will do


def _any_budget(size: int) -> float | None:
    return None


def scenarios() -> dict[str, Scenario]:
    from loadtest.scenarios.incident import link_kbit_for, node_cpus_for, run_incident
    from loadtest.scenarios.others import run_auth_storm, run_node_down, run_silent_failure

    found = [
        Scenario("incident", run_incident, 500, node_cpus_for,
                 "least_rooms piles rooms on the mega-room's node; CPU and NACK alerts fire; the fix resolves them",
                 link_kbit_for),
        Scenario("silent-failure", run_silent_failure, 20, _any_budget,
                 "publishers stop sending while everyone stays: SFUSilentFailure"),
        Scenario("node-down", run_node_down, 20, _any_budget,
                 "a Janus node is killed: JanusDown, rooms avoid it; it restarts: resolved"),
        Scenario("auth-storm", run_auth_storm, 20, _any_budget,
                 "clients retry with bad tokens: SignalingAuthFailureSpike"),
    ]
    return {s.name: s for s in found}
