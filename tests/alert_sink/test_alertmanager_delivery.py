"""A real Alertmanager, run with the committed configuration, delivers to the real sink.

The configuration is ``alertmanager/alertmanager.yml`` rendered by ``alert_sink.amconfig`` with the
sink's test port and a 1 s group_wait: the route tree, grouping and inhibition are the committed ones.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from alert_sink.amconfig import render_alertmanager
from alert_sink.server import AlertSink
from lab.monitoring import Alertmanager
from lab.stack import free_port
from sfu_stack.readiness import wait_until_async


@pytest_asyncio.fixture
async def sink() -> AsyncIterator[AlertSink]:
    server = AlertSink()
    await server.start("127.0.0.1", 0)
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
def alertmanager(sink: AlertSink, tmp_path: Path) -> Iterator[str]:
    """Start Alertmanager (lab.monitoring, as the stack does) with the rendered committed config; yield its URL."""
    config = render_alertmanager(tmp_path / "config", sink_url=f"http://127.0.0.1:{sink.port}/alerts",
                                 timings={"group_wait": "1s", "group_interval": "1m"})
    component = Alertmanager(config, tmp_path, port=free_port())
    try:
        component.start_and_wait(timeout=20)
        yield component.url
    finally:
        component.stop()


def alert(name: str, instance: str, severity: str) -> dict:
    now = datetime.now(UTC)
    return {"labels": {"alertname": name, "severity": severity, "instance": instance, "node": instance,
                       "job": "sfu_nodes", "env": "lab", "region": "local"},
            "annotations": {"summary": f"{name} on {instance}"},
            "startsAt": now.isoformat(), "endsAt": (now + timedelta(minutes=10)).isoformat(),
            "generatorURL": "http://prometheus:9090/graph"}


async def post_alerts(base: str, alerts: list[dict]) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        async def accepted() -> bool:
            async with session.post(f"{base}/api/v2/alerts", data=json.dumps(alerts),
                                    headers={"Content-Type": "application/json"}) as reply:
                return reply.status == 200

        await wait_until_async(accepted, timeout=15, what="Alertmanager accepts alerts")


async def test_fifty_nodes_failing_the_same_way_reach_the_sink_as_one_notification(alertmanager, sink):
    nodes = [f"sfu-node-{i:02d}" for i in range(1, 51)]
    await post_alerts(alertmanager, [alert("SFUHighCPU", node, "critical") for node in nodes])
    await wait_until_async(lambda: sink.query(alertname="SFUHighCPU"), timeout=20,
                           what="the sink receives the SFUHighCPU notification")
    (notification,) = sink.query(alertname="SFUHighCPU")
    assert notification["receiver"] == "critical" and notification["status"] == "firing"
    assert notification["groupLabels"] == {"alertname": "SFUHighCPU", "severity": "critical", "env": "lab",
                                           "region": "local"}
    assert sorted(a["labels"]["instance"] for a in notification["alerts"]) == nodes


async def test_a_down_janus_silences_its_own_nodes_silent_failure_but_not_another_nodes(alertmanager, sink):
    await post_alerts(alertmanager, [alert("JanusDown", "sfu-node-07", "critical"),
                                     alert("SFUSilentFailure", "sfu-node-07", "critical"),
                                     alert("SFUSilentFailure", "sfu-node-08", "critical"),
                                     alert("SFUNackStorm", "sfu-node-09", "warning")])
    await wait_until_async(
        lambda: all(sink.query(alertname=n) for n in ("JanusDown", "SFUSilentFailure", "SFUNackStorm")),
        timeout=20, what="the sink receives JanusDown, SFUSilentFailure and SFUNackStorm")
    (silent,) = sink.query(alertname="SFUSilentFailure")
    assert [a["labels"]["instance"] for a in silent["alerts"]] == ["sfu-node-08"]
    (janus,) = sink.query(alertname="JanusDown")
    assert janus["receiver"] == "critical"
    (storm,) = sink.query(alertname="SFUNackStorm")
    assert storm["receiver"] == "warning"
