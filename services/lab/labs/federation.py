"""Federation beside the native stack (lab 8): ``lab federation up|down|status``.

Natively there is no Compose profile ``federation``, so this starts what it would: two regional
Prometheus servers and a global one, from the committed prometheus/federation/*.yml laid out as
Compose mounts them (the native target set under targets/active, the committed recording rules),
with only the global server's targets rewritten to the regional servers' native addresses (and,
with ``--interval``, the scrape and evaluation intervals). They run inside the stack's namespace,
so ``lab down`` ends them too; a state file in LAB_HOME/federation/ lets ``down`` stop them alone.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path

import yaml

from lab.labs.common import LiveStack, StackNotUp
from lab.monitoring import MissingPrerequisite, Prometheus
from lab.native import Entry, NativeStack, entry_alive, process_start_ticks
from lab.rule_overrides import PROMETHEUS_DIR, render_prometheus
from sfu_stack import topology
from sfu_stack.readiness import NotReady, wait_until

FEDERATION_DIR = PROMETHEUS_DIR / "federation"
# Regional servers of the Compose profile and where they listen natively; the global one keeps
# Compose's published port.
REGION_PORTS = topology.FEDERATION_REGION_PORTS
GLOBAL = "prometheus-global"
GLOBAL_PORT = topology.FEDERATION_GLOBAL_PORT
PORTS = {**REGION_PORTS, GLOBAL: GLOBAL_PORT}


def lay_out(root: Path, interval: str | None = None) -> Path:
    """prometheus/ as Compose mounts it (native targets) plus federation/ with native addresses; returns federation/."""
    render_prometheus(root, target_set="native")
    return write_federation_configs(root / "federation", REGION_PORTS, interval)


def write_federation_configs(folder: Path, region_ports: Mapping[str, int], interval: str | None = None) -> Path:
    """prometheus/federation/*.yml into ``folder`` with each regional server at 127.0.0.1 and its port from
    ``region_ports`` (Compose service name -> port) and, if given, every interval set to ``interval``."""
    folder.mkdir(parents=True, exist_ok=True)
    for source in sorted(FEDERATION_DIR.glob("*.yml")):
        document = yaml.safe_load(source.read_text())
        if interval:
            document["global"].update(scrape_interval=interval, scrape_timeout=interval, evaluation_interval=interval)
        for job in document["scrape_configs"]:
            for static in job.get("static_configs", []):
                static["targets"] = [f"127.0.0.1:{region_ports[t.rpartition(':')[0]]}" for t in static["targets"]]
        (folder / source.name).write_text(yaml.safe_dump(document, sort_keys=False))
    return folder


def urls(stack: LiveStack) -> dict[str, str]:
    """Service name (prometheus-region-a, -region-b, -global) -> URL from the root namespace."""
    return {name: f"http://{stack.ns_ip}:{port}" for name, port in PORTS.items()}


class Federation:
    def __init__(self, stack: NativeStack | None = None) -> None:
        self.stack = stack or NativeStack()
        self.home = self.stack.home / "federation"
        self.state_file = self.home / "state.json"

    def entries(self) -> list[Entry]:
        try:
            return [Entry(**e) for e in json.loads(self.state_file.read_text())]
        except FileNotFoundError:
            return []

    def running(self) -> list[Entry]:
        return [e for e in self.entries() if entry_alive(e)]

    def up(self, interval: str | None = None) -> list[str]:
        netns = self.stack.netns()
        if netns is None:
            raise StackNotUp("the native stack is not up: `lab up` first")
        if self.running():
            raise StackNotUp(f"federation is already up ({self.state_file}): `lab federation down` first")
        folder = lay_out(self.home / "config", interval)
        entries: list[Entry] = []
        try:
            for name, port in PORTS.items():
                server = Prometheus(folder / f"{name.removeprefix('prometheus-')}.yml", self.home / name,
                                    host=netns.ns_ip, listen="0.0.0.0", port=port, netns=netns)
                server.name = name
                server.start_and_wait(timeout=30)
                assert server.pid is not None
                entries.append(Entry(name, server.pid, process_start_ticks(server.pid) or 0, port, "/-/ready",
                                     str(server.log_path)))
                self.home.mkdir(parents=True, exist_ok=True)
                self.state_file.write_text(json.dumps([asdict(e) for e in entries], indent=1))
        except BaseException:
            self.down()
            raise
        return [f"{e.name:22} http://{netns.ns_ip}:{e.port}" for e in entries]

    def down(self, timeout: float = 10.0) -> None:
        entries = self.running()
        for entry in entries:
            os.kill(entry.pid, signal.SIGTERM)
        try:
            wait_until(lambda: not any(entry_alive(e) for e in entries), timeout=timeout, what="federation exits")
        except NotReady:
            for entry in entries:
                if entry_alive(entry):
                    os.kill(entry.pid, signal.SIGKILL)
        self.state_file.unlink(missing_ok=True)


def command(action: str, interval: str | None = None) -> int:
    federation = Federation()
    try:
        if action == "up":
            for line in federation.up(None if interval == "15s" else interval):
                print(f"  {line}")
            print("federation up: the global server federates the regions' recording rules (lab 8); "
                  "stop with `lab federation down`")
        elif action == "down":
            federation.down()
            print("federation down")
        else:
            running = federation.running()
            for entry in running:
                print(f"  {entry.name:22} pid {entry.pid}, port {entry.port}")
            if not running:
                print("federation is not up: `lab federation up`")
                return 1
    except (StackNotUp, MissingPrerequisite, NotReady, OSError) as exc:
        print(f"lab federation {action}: {exc}")
        return 1
    return 0
