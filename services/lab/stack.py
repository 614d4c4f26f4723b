"""The native stack as one object: the namespace, the SFU nodes and the signaling service.

``Stack.start()`` brings everything up and waits for each piece to be ready; ``stop()`` takes it
down in reverse order and removes the namespace, whatever failed in between. Later issues add
the exporters, Prometheus and Alertmanager here; ``lab demo`` and (later) ``lab up`` use it.
"""

from __future__ import annotations

import secrets
import socket
from dataclasses import dataclass, field
from pathlib import Path

from lab.components import Component, JanusNode, python_module
from lab.netns import NetNamespace
from sfu_stack.readiness import http_status
from sfu_stack.topology import NODE_NAMES


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Stack:
    workdir: Path
    node_count: int = 4
    placement_policy: str = "least_participants"
    token_key: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    admin_token: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    signaling_env: dict[str, str] = field(default_factory=dict)  # extra SIGNALING_* settings
    netns: NetNamespace | None = None
    nodes: list[JanusNode] = field(default_factory=list)
    signaling: Component | None = None
    signaling_port: int = 0
    admin_port: int = 0

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.signaling_port}/ws/signaling"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.signaling_port}"

    def start(self) -> None:
        try:
            self.netns = NetNamespace.create()
            for index, name in enumerate(NODE_NAMES[: self.node_count]):
                node = JanusNode(name, index, self.netns, self.workdir, admin_secret=secrets.token_urlsafe(16))
                self.nodes.append(node)
                node.start_and_wait()
            self.signaling_port, self.admin_port = free_port(), free_port()
            self.signaling = Component("signaling", python_module("signaling"), self.workdir, env={
                "SIGNALING_HOST": "127.0.0.1",
                "SIGNALING_PORT": str(self.signaling_port),
                "SIGNALING_ADMIN_PORT": str(self.admin_port),
                "SIGNALING_TOKEN_KEY": self.token_key,
                "SIGNALING_ADMIN_TOKEN": self.admin_token,
                "SIGNALING_SFU_NODES": ",".join(f"{n.node_name}={n.ws_url}" for n in self.nodes),
                "SIGNALING_PLACEMENT_POLICY": self.placement_policy,
                **self.signaling_env,
            })
            self.signaling.start()
            self.signaling.wait_ready(lambda: http_status(f"{self.http_url}/readyz") == 200)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self.signaling is not None:
            self.signaling.stop()
        for node in self.nodes:
            node.stop()
        if self.netns is not None:
            self.netns.destroy()

    def components(self) -> list[Component]:
        return [*self.nodes, *([self.signaling] if self.signaling else [])]
