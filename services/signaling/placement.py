"""Which SFU node gets a new room: the placement policies, as pure logic.

``least_rooms`` is the incident's bug: a node holding one 500-person room counts as lightly
loaded as a node holding one two-person room, so it keeps receiving its share of new rooms.
``least_participants`` and ``least_handles`` (the post-mortem fix: reads each node's exporter
``sfu_active_handles``) weigh rooms by what they cost. Draining a node stops new rooms on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from signaling.config import POLICIES


class NoNodeAvailable(Exception):
    """Every node is unhealthy or draining."""


@dataclass(frozen=True)
class NodeLoad:
    """What placement knows of one node at decision time."""

    name: str
    healthy: bool
    draining: bool
    rooms: int
    participants: int
    handles: float | None  # from the exporter; None when unknown or stale


class Placement:
    """Holds the current policy and the drained nodes; ``choose`` picks a node for a new room."""

    def __init__(self, policy: str, node_names: Sequence[str]) -> None:
        self.node_names = list(node_names)
        self.draining: set[str] = set()
        self._next = 0
        self.policy = policy

    @property
    def policy(self) -> str:
        return self._policy

    @policy.setter
    def policy(self, value: str) -> None:
        if value not in POLICIES:
            raise ValueError(f"unknown placement policy {value!r}; choose one of {', '.join(POLICIES)}")
        self._policy = value

    def drain(self, name: str, draining: bool = True) -> None:
        if name not in self.node_names:
            raise KeyError(name)
        (self.draining.add if draining else self.draining.discard)(name)

    def choose(self, loads: Sequence[NodeLoad]) -> tuple[str, str]:
        """Return ``(node, policy actually used)``; ``least_handles`` without readings falls back."""
        order = {name: i for i, name in enumerate(self.node_names)}
        candidates = sorted((load for load in loads if load.healthy and load.name not in self.draining),
                            key=lambda load: order.get(load.name, len(order)))
        if not candidates:
            raise NoNodeAvailable("no healthy SFU node accepts new rooms")
        policy = self._policy
        if policy == "least_handles" and any(load.handles is None for load in candidates):
            policy = "least_participants"
        if policy == "round_robin":
            for step in range(len(self.node_names)):
                name = self.node_names[(self._next + step) % len(self.node_names)]
                match = next((load for load in candidates if load.name == name), None)
                if match is not None:
                    self._next = (self.node_names.index(name) + 1) % len(self.node_names)
                    return name, policy
            raise NoNodeAvailable("no healthy SFU node accepts new rooms")
        key = {
            "least_rooms": lambda load: load.rooms,
            "least_participants": lambda load: load.participants,
            "least_handles": lambda load: load.handles,
        }[policy]
        return min(candidates, key=key).name, policy
