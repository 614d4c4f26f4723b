"""The native backend of ``sfu_stack.control.StackControl``: the ``lab up`` stack's SFU nodes.

Signals go to the Janus process the state file names (checked against its start time, so a reused
PID is never signalled); CPU limits are the node's cgroup v1 ``cpu`` group (``lab.cgroups``), and
CPU time is that group's ``cpuacct``-style usage read from the process itself (``/proc/PID/stat``),
the same number the exporter reports.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from lab import cgroups
from lab.native import Entry, LabError, NativeStack, entry_alive, load_secrets
from sfu_stack import topology
from sfu_stack.control import Endpoints

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class NativeControl:
    runner = "native"

    def __init__(self, stack: NativeStack) -> None:
        self.stack = stack

    def _entry(self, node: str) -> Entry:
        for entry in self.stack.entries():
            if entry.name == node:
                return entry
        raise LabError(f"no SFU node {node!r} in the native stack (is it up? `lab status`)")

    def _signal(self, node: str, signum: int) -> None:
        entry = self._entry(node)
        if not entry_alive(entry):
            raise LabError(f"{node}'s Janus (pid {entry.pid}) is not running")
        os.kill(entry.pid, signum)

    def nodes(self) -> tuple[str, ...]:
        return topology.NODE_NAMES

    def endpoints(self) -> Endpoints:
        netns = self.stack.netns()
        if netns is None:
            raise LabError("the native stack is not up: `lab up`")
        secret = load_secrets(self.stack.home, self.stack.env)
        ip = netns.ns_ip
        return Endpoints(
            signaling_ws=f"ws://{ip}:{topology.SIGNALING_PORT}/ws/signaling",
            signaling_admin=f"http://{ip}:{topology.SIGNALING_ADMIN_PORT}",
            admin_token=secret["SIGNALING_ADMIN_TOKEN"], token_key=secret["SIGNALING_TOKEN_KEY"],
            prometheus=f"http://{ip}:{topology.PROMETHEUS_PORT}",
            alert_sink=f"http://{ip}:{topology.ALERT_SINK_PORT}",
            alertmanager=f"http://{ip}:{topology.ALERTMANAGER_PORT}",
            exporters={name: f"http://{ip}:{topology.exporter_port(i)}/metrics"
                       for i, name in enumerate(topology.NODE_NAMES)},
            bots_metrics=(netns.host_ip, topology.BOTS_METRICS_PORT),
            ice_address=netns.host_ip,
        )

    def kill_node(self, node: str) -> None:
        self._signal(node, signal.SIGKILL)

    def stop_node(self, node: str) -> None:
        self._signal(node, signal.SIGSTOP)

    def continue_node(self, node: str) -> None:
        self._signal(node, signal.SIGCONT)

    def restart_node(self, node: str) -> None:
        self.stack.restart_node(node)

    def _group(self, node: str) -> Path | None:
        entry = self._entry(node)
        return Path(entry.cgroup) if entry.cgroup else None

    def cpu_limit(self, node: str) -> float | None:
        group = self._group(node)
        if group is None:
            return None
        quota = int((group / "cpu.cfs_quota_us").read_text())
        return None if quota < 0 else quota / int((group / "cpu.cfs_period_us").read_text())

    def set_cpu_limit(self, node: str, cores: float) -> None:
        group = self._group(node)
        if group is None:
            raise LabError(f"{node} runs without a CPU group here ({cgroups.available()[1]})")
        (group / "cpu.cfs_quota_us").write_text(str(int(cores * int((group / "cpu.cfs_period_us").read_text()))))

    def janus_cpu_seconds(self, node: str) -> float:
        entry = self._entry(node)
        text = Path(f"/proc/{entry.pid}/stat").read_text()
        fields = text[text.rindex(")") + 2:].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def link_kbit(self, node: str) -> int | None:
        self._entry(node)
        return self.stack.settings().get("link_kbit") or None

    def start_hint(self, node_cpus: float, link_kbit: int | None = None) -> str:
        link = f" --link-kbit {link_kbit}" if link_kbit else ""
        return f"lab down && lab up --fast --node-cpus {node_cpus:g}{link}"
