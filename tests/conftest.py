"""Fixtures shared by the suite: the lab namespace, real Janus nodes, an in-process signaling server."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from lab.components import JanusExporter, JanusNode, events_env
from lab.netns import NetNamespace
from lab.stack import free_port
from signaling.config import Config, load
from signaling.server import SignalingServer

from support import ADMIN_TOKEN, TOKEN_KEY


@pytest.fixture(scope="session")
def lab_netns() -> Iterator[NetNamespace]:
    ns = NetNamespace.create()
    try:
        yield ns
    finally:
        ns.destroy()


@pytest.fixture
def janus_nodes(lab_netns: NetNamespace, tmp_path: Path) -> Iterator[Callable[..., list[JanusNode]]]:
    """Factory: ``janus_nodes(n)`` starts n real Janus nodes (sfu-node-01 ...) and stops them after the test."""
    started: list[JanusNode] = []

    def start(count: int, **extra_env: str) -> list[JanusNode]:
        nodes = []
        for index in range(len(started), len(started) + count):
            node = JanusNode(f"sfu-node-{index + 1:02d}", index, lab_netns, tmp_path / "janus",
                             admin_secret=secrets.token_hex(12), extra_env=extra_env)
            started.append(node)
            node.start_and_wait()
            nodes.append(node)
        return nodes

    try:
        yield start
    finally:
        for node in started:
            node.stop()


@pytest.fixture
def monitored_nodes(lab_netns: NetNamespace, tmp_path: Path) -> Iterator[Callable[..., list[JanusExporter]]]:
    """Factory: ``monitored_nodes(n, stats_period=1, **exporter_env)`` starts n Janus nodes posting events
    to their own real exporter sidecar; returns the exporters (``exporter.node`` is the node)."""
    started: list[JanusExporter | JanusNode] = []

    def start(count: int, *, stats_period: int = 1, **exporter_env: str) -> list[JanusExporter]:
        exporters = []
        for _ in range(count):
            index = sum(isinstance(c, JanusNode) for c in started)
            port = free_port()
            events_url = f"http://{lab_netns.host_ip}:{port}/events"
            node = JanusNode(f"sfu-node-{index + 1:02d}", index, lab_netns, tmp_path / "janus",
                             admin_secret=secrets.token_hex(12), extra_env=events_env(events_url, stats_period))
            exporter = JanusExporter(node, tmp_path / "janus", host=lab_netns.host_ip, port=port, extra_env={
                "JANUS_EXPORTER_EVENT_SOURCES": f"{lab_netns.ns_ip}/32", **exporter_env})
            started.extend([node, exporter])
            node.start_and_wait()
            exporter.start_and_wait()
            exporters.append(exporter)
        return exporters

    try:
        yield start
    finally:
        for component in reversed(started):
            component.stop()


def signaling_config(nodes: list[JanusNode], **overrides: str) -> Config:
    env = {
        "SIGNALING_HOST": "127.0.0.1",
        "SIGNALING_PORT": "0",
        "SIGNALING_ADMIN_PORT": "0",
        "SIGNALING_TOKEN_KEY": TOKEN_KEY,
        "SIGNALING_ADMIN_TOKEN": ADMIN_TOKEN,
        "SIGNALING_SFU_NODES": ",".join(f"{n.node_name}={n.ws_url}" for n in nodes),
        "SIGNALING_HEALTH_PERIOD": "0.5",
        "SIGNALING_JANUS_TIMEOUT": "2",
    }
    env.update({f"SIGNALING_{k.upper()}": v for k, v in overrides.items()})
    return load(env)


@pytest_asyncio.fixture
async def signaling_server() -> AsyncIterator[Callable[..., object]]:
    """Factory: ``await signaling_server(nodes, **settings)`` runs a SignalingServer on port 0."""
    servers: list[SignalingServer] = []

    async def start(nodes: list[JanusNode], **overrides: str) -> SignalingServer:
        server = SignalingServer(signaling_config(nodes, **overrides))
        servers.append(server)
        await server.start()
        for node in server.nodes.values():
            assert await node.wait_connected(10), f"{node.name} did not connect"
        return server

    try:
        yield start
    finally:
        for server in servers:
            await server.close()
