"""The service as a process: configuration errors at start, readiness, and a graceful SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request

import pytest
import websockets

from lab.components import Component, python_module
from sfu_stack.readiness import http_status, wait_until
from signaling.client import SignalingClient

from support import ADMIN_TOKEN, TOKEN_KEY, token

pytestmark = pytest.mark.janus


def test_a_missing_or_bad_setting_stops_start_with_each_problem_named():
    result = subprocess.run([sys.executable, "-m", "signaling", "--port", "nope"], capture_output=True,
                            text=True, env={"PATH": "/usr/bin:/bin"}, timeout=30)
    assert result.returncode == 2
    for expected in ("SIGNALING_TOKEN_KEY is required", "SIGNALING_ADMIN_TOKEN is required",
                     "SIGNALING_SFU_NODES is required", "SIGNALING_PORT='nope'"):
        assert expected in result.stderr


def readyz(port: int) -> int:
    return http_status(f"http://127.0.0.1:{port}/readyz")


async def test_sigterm_closes_clients_with_1001_cleans_janus_and_exits_zero(janus_nodes, tmp_path,
                                                                           unused_tcp_port_factory):
    (node,) = janus_nodes(1)
    port, admin_port = unused_tcp_port_factory(), unused_tcp_port_factory()
    service = Component("signaling", python_module("signaling"), tmp_path, env={
        "SIGNALING_HOST": "127.0.0.1", "SIGNALING_PORT": str(port), "SIGNALING_ADMIN_PORT": str(admin_port),
        "SIGNALING_TOKEN_KEY": TOKEN_KEY, "SIGNALING_ADMIN_TOKEN": ADMIN_TOKEN,
        "SIGNALING_SFU_NODES": f"{node.node_name}={node.ws_url}"})
    service.start()
    try:
        service.wait_ready(lambda: readyz(port) == 200)
        client = await SignalingClient.connect(f"ws://127.0.0.1:{port}/ws/signaling")
        assert (await client.join("r1", token("r1")))["type"] == "joined"
        assert node.admin("list_sessions")["sessions"]

        service.signal(signal.SIGTERM)
        with pytest.raises(websockets.ConnectionClosedOK) as closed:
            await client.receive(timeout=10)
        assert closed.value.rcvd.code == 1001
        assert service.process.wait(10) == 0
        assert node.admin("list_sessions")["sessions"] == [], "participants left Janus on shutdown"
        assert "shutting down" in service.log_path.read_text()
    finally:
        service.stop()
        print(service.log_tail())


def test_metrics_and_health_answer_over_http(janus_nodes, tmp_path, unused_tcp_port_factory):
    (node,) = janus_nodes(1)
    port = unused_tcp_port_factory()
    service = Component("signaling", python_module("signaling", "--port", str(port), "--admin-port", "0",
                                                   "--host", "127.0.0.1"), tmp_path, env={
        "SIGNALING_TOKEN_KEY": TOKEN_KEY, "SIGNALING_ADMIN_TOKEN": ADMIN_TOKEN,
        "SIGNALING_SFU_NODES": f"{node.node_name}={node.ws_url}"})
    service.start()
    try:
        service.wait_ready(lambda: readyz(port) == 200)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as reply:
            assert reply.status == 200
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as reply:
            assert json.load(reply) == {"ready": True, "nodes": {node.node_name: True}}
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as reply:
            text = reply.read().decode()
        assert reply.headers["Content-Type"].startswith("text/plain; version=")
        assert 'http_request_duration_seconds_count{endpoint="/readyz",method="GET"}' in text
        assert f'signaling_janus_node_up{{node="{node.node_name}"}} 1.0' in text
        node.stop()
        wait_until(lambda: readyz(port) == 503, timeout=5, what="readyz 503 once the only node is gone")
    finally:
        service.stop()
