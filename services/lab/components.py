"""Start and stop the lab's real components as child processes, each with its own log file.

``Component`` is the common life cycle (start, poll for readiness with a deadline, stop, log
tail); ``JanusNode`` is one SFU node: Janus with a configuration rendered from the node's
templates, run inside the lab's network namespace. Tests and the ``lab`` command both use these.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from janus_node import render as janus_render
from lab.netns import NetNamespace
from sfu_stack import topology
from sfu_stack.readiness import NotReady, port_open, wait_until


class ComponentError(RuntimeError):
    """A component failed to start or died; the message ends with the tail of its log."""


@dataclass
class Component:
    """One child process with a log file in ``workdir``."""

    name: str
    argv: Sequence[str]
    workdir: Path
    env: Mapping[str, str] = field(default_factory=dict)
    netns: NetNamespace | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        prefix = self.netns.exec_prefix() if self.netns else []
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [*prefix, *self.argv],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **self.env},
                start_new_session=True,
            )

    def wait_ready(self, check: Callable[[], bool], timeout: float = 15.0) -> None:
        def ready() -> bool:
            if not self.alive():
                raise ComponentError(f"{self.name} exited with {self.process and self.process.returncode}"
                                     f"\n{self.log_tail()}")
            return check()

        try:
            wait_until(ready, timeout=timeout, what=f"{self.name} ready")
        except NotReady as exc:
            raise ComponentError(f"{exc}\n{self.log_tail()}") from exc

    def signal(self, signum: int) -> None:
        if self.alive():
            assert self.process is not None
            self.process.send_signal(signum)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout`` s; return the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return self.process.returncode

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return f"({self.log_path} does not exist)"
        return "\n".join(f"  {self.name}| {line}" for line in text[-lines:])


@dataclass
class JanusPorts:
    """Where one node listens; nodes sharing a namespace get disjoint ports and RTP ranges."""

    ws: int
    admin: int
    rtp_range: str

    @classmethod
    def for_index(cls, index: int) -> JanusPorts:
        base = 20000 + 1000 * index
        return cls(ws=topology.janus_ws_port(index), admin=topology.janus_admin_port(index),
                   rtp_range=f"{base}-{base + 999}")


class JanusNode(Component):
    """A real Janus SFU node inside the lab namespace, configured from ``services/janus/templates``.

    By default its WebSocket and Admin APIs listen on the namespace's veth address (reachable from
    the root namespace); ``extra_env`` may move them (the native stack keeps the Admin API on the
    namespace's 127.0.0.1, as Compose keeps it inside the node's network).
    """

    def __init__(self, node_name: str, index: int, netns: NetNamespace, workdir: Path, *,
                 admin_secret: str, extra_env: Mapping[str, str] | None = None) -> None:
        self.node_name = node_name
        self.ports = JanusPorts.for_index(index)
        self.ip = netns.ns_ip
        self.admin_secret = admin_secret
        self.config_dir = workdir / node_name / "etc"
        self.janus_env = {
            "JANUS_NODE_NAME": node_name,
            "JANUS_ADMIN_SECRET": admin_secret,
            "JANUS_INTERFACE": netns.ns_ip,
            "JANUS_ICE_ENFORCE_LIST": netns.ns_if,
            "JANUS_WS_PORT": str(self.ports.ws),
            "JANUS_WS_IP": netns.ns_ip,
            "JANUS_ADMIN_PORT": str(self.ports.admin),
            "JANUS_ADMIN_IP": netns.ns_ip,
            "JANUS_RTP_PORT_RANGE": self.ports.rtp_range,
            **(extra_env or {}),
        }
        self.pidfile = workdir / node_name / "janus.pid"
        super().__init__(name=node_name, argv=["janus", "-F", str(self.config_dir), "-o", "-p", str(self.pidfile)],
                         workdir=workdir, netns=netns)

    def _address(self, key: str) -> str:
        address = self.janus_env[key]
        return self.ip if address == "0.0.0.0" else address

    @property
    def ws_url(self) -> str:
        return f"ws://{self._address('JANUS_WS_IP')}:{self.ports.ws}"

    @property
    def admin_url(self) -> str:
        return f"http://{self._address('JANUS_ADMIN_IP')}:{self.ports.admin}/admin"

    def start(self) -> None:
        if shutil.which("janus") is None:
            raise ComponentError("janus is not installed: run `make deps` (installs Debian's janus)")
        janus_render.render(self.config_dir, self.janus_env)
        super().start()

    def admin(self, request: str, timeout: float = 10.0, **fields: object) -> dict[str, Any]:
        """One Admin API request (``info``, ``list_sessions``, ...); raises on a Janus error."""
        url = self.admin_url + "".join(f"/{fields.pop(k)}" for k in ("session_id", "handle_id") if k in fields)
        body = json.dumps({"janus": request, "transaction": secrets.token_hex(6),
                           "admin_secret": self.admin_secret, **fields}).encode()
        with urllib.request.urlopen(urllib.request.Request(url, data=body), timeout=timeout) as reply:
            answer = json.load(reply)
        if answer.get("janus") == "error":
            raise ComponentError(f"{self.node_name} admin {request}: {answer.get('error')}")
        return answer

    def count_handles(self) -> int:
        """Handles over all sessions, from the Admin API."""
        sessions = self.admin("list_sessions")["sessions"]
        return sum(len(self.admin("list_handles", session_id=s).get("handles", [])) for s in sessions)

    def start_and_wait(self, timeout: float = 15.0) -> None:
        self.start()
        self.wait_ready(lambda: port_open(self.ip, self.ports.ws), timeout=timeout)


class JanusExporter(Component):
    """The exporter sidecar of one Janus node.

    Tests run it in the root namespace on the veth host end (``host``), accepting events from the
    namespace's address; the native stack runs it inside the namespace next to its node, where
    Janus posts from 127.0.0.1 (the exporter's default event source), as in Compose.
    """

    def __init__(self, node: JanusNode, workdir: Path, *, host: str, port: int, netns: NetNamespace | None = None,
                 extra_env: Mapping[str, str] | None = None) -> None:
        self.node = node
        self.address = (host, port)
        env = {
            "JANUS_ADMIN_SECRET": node.admin_secret,
            "JANUS_EXPORTER_ADMIN_URL": node.admin_url,
            "JANUS_EXPORTER_LISTEN": host,
            "JANUS_EXPORTER_PORT": str(port),
            "JANUS_EXPORTER_PIDFILE": str(node.pidfile),
            "JANUS_STATS_PERIOD": node.janus_env.get("JANUS_STATS_PERIOD", janus_render.DEFAULTS["JANUS_STATS_PERIOD"]),
            **(extra_env or {}),
        }
        super().__init__(name=f"{node.node_name}-exporter", argv=python_module("janus_exporter"), workdir=workdir,
                         env=env, netns=netns)

    @property
    def metrics_url(self) -> str:
        return f"http://{self.address[0]}:{self.address[1]}/metrics"

    @property
    def events_url(self) -> str:
        return f"http://{self.address[0]}:{self.address[1]}/events"

    def start_and_wait(self, timeout: float = 15.0) -> None:
        self.start()
        self.wait_ready(lambda: port_open(*self.address), timeout=timeout)


def events_env(events_url: str, stats_period: int = 1) -> dict[str, str]:
    """Janus settings that make a node post handle, WebRTC and media events to ``events_url``."""
    return {"JANUS_EVENTS_ENABLED": "true", "JANUS_EVENTS_BACKEND": events_url,
            "JANUS_STATS_PERIOD": str(stats_period)}


def python_module(module: str, *args: str) -> list[str]:
    """argv that runs one of the project's modules with the current interpreter."""
    return [sys.executable, "-m", module, *args]
