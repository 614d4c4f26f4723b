"""The one interface through which scenarios, labs and reports act on a running stack.

Two backends implement ``StackControl``: ``lab.control.NativeControl`` (``lab up``: signals to the
Janus process, the cgroup v1 ``cpu`` controller) and ``sfu_stack.compose.ComposeControl`` (the
Compose stack, through the Docker SDK on the Docker socket). Code that takes a ``StackControl``
does not know which runner the stack is on; ``Endpoints`` says where each service answers from the
caller's side.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Endpoints:
    signaling_ws: str
    signaling_admin: str
    admin_token: str
    token_key: str
    prometheus: str
    alert_sink: str
    alertmanager: str
    exporters: dict[str, str]  # node -> /metrics URL
    bots_metrics: tuple[str, int]  # where the bots' /metrics listens (Prometheus's loadtest_bots target)
    timeout_scale: float = 1.0  # deadlines are sized for the fast alert rules; >1 for the committed ones
    ice_address: str | None = None  # the one address aiortc gathers candidates on (None: any)
    notes: dict[str, str] = field(default_factory=dict)


class StackControl(Protocol):
    """What can be done to a running stack's SFU nodes, on either runner."""

    runner: str  # "native" or "compose"

    def nodes(self) -> tuple[str, ...]:
        """The SFU nodes, by name (sfu-node-01 ...)."""
        ...

    def endpoints(self) -> Endpoints:
        ...

    def kill_node(self, node: str) -> None:
        """SIGKILL the node's Janus (a crash); it stays down until ``restart_node``."""
        ...

    def stop_node(self, node: str) -> None:
        """SIGSTOP the node's Janus (hung: its sockets stay open, nothing answers)."""
        ...

    def continue_node(self, node: str) -> None:
        """SIGCONT a stopped Janus."""
        ...

    def restart_node(self, node: str) -> None:
        """Start a killed Janus again with its configuration and CPU limit; return once its
        WebSocket API accepts connections."""
        ...

    def cpu_limit(self, node: str) -> float | None:
        """The node's Janus CPU limit in cores (None: unlimited)."""
        ...

    def set_cpu_limit(self, node: str, cores: float) -> None:
        """Change the node's Janus CPU limit while it runs (Compose ``cpus:``, a cgroup quota natively)."""
        ...

    def janus_cpu_seconds(self, node: str) -> float:
        """CPU time the node's Janus has used (user + system), read where the limit is enforced."""
        ...

    def link_kbit(self, node: str) -> int | None:
        """The capacity of the node's media link in kbit/s (None: unshaped), as the stack applied it."""
        ...

    def start_hint(self, node_cpus: float, link_kbit: int | None = None) -> str:
        """The command a user runs to start this stack with ``node_cpus`` per SFU node (and, given,
        a ``link_kbit`` media link per node)."""
        ...
