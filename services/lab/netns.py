"""A private network namespace joined to the root namespace by a veth pair.

Janus 1.1.2 skips loopback interfaces when it gathers ICE candidates, so the lab runs its SFU
nodes inside a namespace of their own with a veth address from 198.18.0.0/15 (the benchmarking
range, never routed outside this machine). The root-namespace end of the pair is a second "host":
the signaling service and the aiortc peers reach the nodes through it, and ICE pairs the two veth
addresses without any sysctl changes.

Names of ephemeral namespaces (tests, benchmarks) carry the creating PID, so one left behind by a
killed run is recognised and removed by the next one. The native stack (``lab up``) outlives the
command that made it: it uses the fixed name ``sfulab-up`` and slot ``UP_SLOT``, which ephemeral
namespaces never take, and ``lab down`` removes it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import shutil
import subprocess
from dataclasses import dataclass

PREFIX = "sfulab-"
NETWORK = ipaddress.ip_network("198.18.0.0/15")
EPHEMERAL_SLOTS = 8000
# LAB_INSTANCE=N (default 0) gives a second native stack its own namespace, slot and cgroup group, so two
# checkouts on one machine (a developer beside a running workshop stack) do not collide.
INSTANCE = int(os.environ.get("LAB_INSTANCE") or 0)
INSTANCE_SUFFIX = str(INSTANCE) if INSTANCE else ""  # of the namespace's and the cgroup group's names
UP_NAME = f"{PREFIX}up{INSTANCE_SUFFIX}"
UP_SLOT = EPHEMERAL_SLOTS + INSTANCE  # instance 0: 198.18.125.0/30, host .1, namespace .2


class NetnsError(RuntimeError):
    """The namespace could not be created (missing iproute2, not root, ...)."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def existing() -> list[str]:
    """Names of the lab's namespaces present on this machine."""
    out = _ip("netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(PREFIX)]


def remove_stale() -> list[str]:
    """Delete lab namespaces whose creating process is gone; return their names."""
    removed = []
    for name in existing():
        match = re.fullmatch(rf"{PREFIX}(\d+)-(\d+)", name)
        if match and not _pid_alive(int(match.group(1))):
            _delete(name, int(match.group(2)))
            removed.append(name)
    return removed


def _delete(name: str, slot: int) -> None:
    pids = _ip("netns", "pids", name, check=False).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), 9)
    _ip("netns", "del", name, check=False)
    _ip("link", "del", f"slh{slot}", check=False)


@dataclass
class NetNamespace:
    """A namespace holding one veth end (``ns_ip``) whose peer (``host_ip``) stays in the root namespace."""

    name: str
    slot: int
    host_if: str
    ns_if: str
    host_ip: str
    ns_ip: str

    @classmethod
    def create(cls, name: str | None = None, slot: int | None = None) -> NetNamespace:
        """A new namespace: ephemeral (named after this PID) unless ``name`` and ``slot`` are given."""
        if shutil.which("ip") is None:
            raise NetnsError("the 'ip' command is missing: run `make deps` (installs iproute2)")
        if os.geteuid() != 0:
            raise NetnsError("creating a network namespace needs root")
        remove_stale()
        used = set(existing())
        if name is not None and slot is not None:
            if name in used:
                raise NetnsError(f"namespace {name} exists already")
        else:
            slot = os.getpid() % EPHEMERAL_SLOTS
            while (f"{PREFIX}{os.getpid()}-{slot}" in used
                   or _ip("link", "show", f"slh{slot}", check=False).returncode == 0):
                slot = (slot + 1) % EPHEMERAL_SLOTS
            name = f"{PREFIX}{os.getpid()}-{slot}"
        subnet = list(NETWORK.subnets(new_prefix=30))[slot]
        host_ip, ns_ip = (str(a) for a in list(subnet.hosts())[:2])
        ns = cls(name, slot, f"slh{slot}", f"sln{slot}", host_ip, ns_ip)
        try:
            ns._build(subnet.prefixlen)
        except subprocess.CalledProcessError as exc:
            ns.destroy()
            raise NetnsError(f"could not build namespace {ns.name}: {exc.stderr.strip()}") from exc
        return ns

    def _build(self, prefixlen: int) -> None:
        _ip("netns", "add", self.name)
        _ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
        _ip("link", "set", self.ns_if, "netns", self.name)
        _ip("addr", "add", f"{self.host_ip}/{prefixlen}", "dev", self.host_if)
        _ip("link", "set", self.host_if, "up")
        _ip("-n", self.name, "addr", "add", f"{self.ns_ip}/{prefixlen}", "dev", self.ns_if)
        _ip("-n", self.name, "link", "set", self.ns_if, "up")
        _ip("-n", self.name, "link", "set", "lo", "up")

    def exec_prefix(self) -> list[str]:
        """Argument prefix that runs a command inside the namespace."""
        return ["ip", "netns", "exec", self.name]

    def destroy(self) -> None:
        """Kill what still runs inside, delete the namespace and the veth pair. Safe to call twice."""
        _delete(self.name, self.slot)

    def __enter__(self) -> NetNamespace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()
