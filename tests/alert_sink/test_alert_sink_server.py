"""The alert sink as a real HTTP server on a free port, and as a process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families

from alert_sink.__main__ import parse
from alert_sink.server import AlertSink
from sfu_stack.readiness import port_open, wait_until


def payload(alertname: str = "SFUHighCPU", status: str = "firing", instances: int = 1,
            receiver: str = "critical") -> dict[str, Any]:
    """An Alertmanager webhook payload (version 4) as Alertmanager sends it."""
    alerts = [{"status": status,
               "labels": {"alertname": alertname, "severity": "critical", "instance": f"sfu-node-{i:02d}"},
               "annotations": {"summary": "s", "description": f"d {i}"},
               "startsAt": "2026-01-01T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
               "generatorURL": "http://prometheus:9090/graph", "fingerprint": f"{i:016x}"}
              for i in range(1, instances + 1)]
    return {"version": "4", "groupKey": "{}:{alertname=" + json.dumps(alertname) + "}", "truncatedAlerts": 0,
            "status": status, "receiver": receiver,
            "groupLabels": {"alertname": alertname, "severity": "critical"},
            "commonLabels": {"alertname": alertname, "severity": "critical"},
            "commonAnnotations": {"summary": "s"}, "externalURL": "http://alertmanager:9093", "alerts": alerts}


@pytest_asyncio.fixture
async def sink() -> AsyncIterator[AlertSink]:
    server = AlertSink(max_notifications=5, max_body_bytes=64 * 1024)
    await server.start("127.0.0.1", 0)
    try:
        yield server
    finally:
        await server.close()


@pytest_asyncio.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


def url(sink: AlertSink, path: str) -> str:
    return f"http://127.0.0.1:{sink.port}{path}"


async def post(client: aiohttp.ClientSession, sink: AlertSink, body: Any) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with client.post(url(sink, "/alerts"), data=data, headers={"Content-Type": "application/json"}) as reply:
        return reply.status, await reply.json()


async def listed(client: aiohttp.ClientSession, sink: AlertSink, query: str = "") -> list[dict]:
    async with client.get(url(sink, "/alerts" + query)) as reply:
        assert reply.status == 200
        body = await reply.json()
        assert body["count"] == len(body["notifications"])
        return body["notifications"]


async def metrics(client: aiohttp.ClientSession, sink: AlertSink) -> dict[tuple[str, tuple], float]:
    async with client.get(url(sink, "/metrics")) as reply:
        assert reply.status == 200
        text = await reply.text()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def test_a_posted_notification_is_listed_with_its_alerts_and_counted(sink, client):
    status, body = await post(client, sink, payload(instances=3))
    assert (status, body) == (200, {"id": 1})
    (notification,) = await listed(client, sink)
    assert notification["id"] == 1 and notification["status"] == "firing" and notification["receiver"] == "critical"
    assert [a["labels"]["instance"] for a in notification["alerts"]] == ["sfu-node-01", "sfu-node-02", "sfu-node-03"]
    assert notification["commonLabels"] == {"alertname": "SFUHighCPU", "severity": "critical"}
    seen = await metrics(client, sink)
    assert seen[("alert_sink_notifications_total", (("status", "firing"),))] == 1
    assert seen[("alert_sink_notifications_total", (("status", "resolved"),))] == 0
    assert seen[("alert_sink_alerts_total", (("status", "firing"),))] == 3
    assert seen[("alert_sink_notifications_stored", ())] == 1


async def test_the_list_filters_by_alertname_status_receiver_and_since(sink, client):
    await post(client, sink, payload("SFUHighCPU"))
    await post(client, sink, payload("JanusDown", receiver="sink"))
    await post(client, sink, payload("SFUHighCPU", status="resolved"))
    assert [n["id"] for n in await listed(client, sink, "?alertname=SFUHighCPU")] == [1, 3]
    assert [n["id"] for n in await listed(client, sink, "?alertname=SFUHighCPU&status=resolved")] == [3]
    assert [n["id"] for n in await listed(client, sink, "?receiver=sink")] == [2]
    assert [n["id"] for n in await listed(client, sink, "?since=1")] == [2, 3]
    assert await listed(client, sink, "?alertname=Nothing") == []
    async with client.get(url(sink, "/alerts?status=pending")) as reply:
        assert reply.status == 400
    async with client.get(url(sink, "/alerts?since=x")) as reply:
        assert reply.status == 400


async def test_only_the_newest_notifications_are_kept(sink, client):
    for _ in range(8):
        await post(client, sink, payload())
    assert [n["id"] for n in await listed(client, sink)] == [4, 5, 6, 7, 8]
    assert (await metrics(client, sink))[("alert_sink_notifications_stored", ())] == 5


@pytest.mark.parametrize(("body", "message"), [
    (b"{not json", "not JSON"),
    (b"\xff\xfe", "not JSON"),
    ([], "must be a JSON object"),
    ({**payload(), "status": "pending"}, "payload.status must be one of"),
    ({**payload(), "alerts": []}, "payload.alerts must be a non-empty list"),
    ({**payload(), "alerts": [{"status": "firing", "labels": {"severity": "x"}}]}, "has no alertname"),
    ({**payload(), "alerts": [{"status": "firing", "labels": {"alertname": 3}}]}, "must be an object of strings"),
    ({**payload(), "truncatedAlerts": -1}, "truncatedAlerts"),
    ({k: v for k, v in payload().items() if k != "receiver"}, "payload.receiver must be a string"),
])
async def test_a_malformed_body_gets_400_naming_the_problem_is_counted_and_the_sink_keeps_working(
        sink, client, body, message):
    status, reply = await post(client, sink, body)
    assert status == 400 and message in reply["error"], reply
    assert (await metrics(client, sink))[("alert_sink_notifications_rejected_total", (("reason", "malformed"),))] == 1
    assert await listed(client, sink) == []
    assert (await post(client, sink, payload()))[0] == 200


async def test_an_oversized_body_gets_413_whether_announced_or_streamed(sink, client):
    big = json.dumps({**payload(), "padding": "x" * (100 * 1024)}).encode()
    status, reply = await post(client, sink, big)
    assert status == 413 and "larger than" in reply["error"]

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 8192):
            yield big[start:start + 8192]

    async with client.post(url(sink, "/alerts"), data=chunks()) as streamed:
        assert streamed.status == 413
    seen = await metrics(client, sink)
    assert seen[("alert_sink_notifications_rejected_total", (("reason", "too_large"),))] == 2
    assert (await post(client, sink, payload()))[0] == 200


async def test_delete_forgets_every_notification_and_healthz_answers(sink, client):
    await post(client, sink, payload())
    async with client.delete(url(sink, "/alerts")) as reply:
        assert await reply.json() == {"cleared": 1}
    assert await listed(client, sink) == []
    async with client.get(url(sink, "/healthz")) as reply:
        assert reply.status == 200 and await reply.json() == {"status": "ok"}


def test_settings_come_from_flags_over_environment_and_bad_values_are_all_listed():
    assert parse([], {"ALERT_SINK_PORT": "19099"})["port"] == 19099
    assert parse(["--port", "1"], {"ALERT_SINK_PORT": "19099"})["port"] == 1
    assert parse([], {})["port"] == 9099
    with pytest.raises(ValueError) as error:
        parse(["--port", "70000", "--max-notifications", "0"], {})
    assert "port" in str(error.value) and "max_notifications" in str(error.value)


def test_the_process_serves_on_alert_sink_port_and_stops_cleanly_on_sigterm():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "ALERT_SINK_PORT": str(port), "ALERT_SINK_HOST": "127.0.0.1"}
    process = subprocess.Popen([sys.executable, "-m", "alert_sink"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(lambda: process.poll() is not None or port_open("127.0.0.1", port), timeout=15,
                   what="alert sink listens")
        assert process.poll() is None, process.stdout.read()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert "shutting down" in process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_the_process_refuses_a_bad_port_with_exit_code_2():
    run = subprocess.run([sys.executable, "-m", "alert_sink"], env={**os.environ, "ALERT_SINK_PORT": "nope"},
                         capture_output=True, text=True, timeout=30)
    assert run.returncode == 2 and "port" in run.stderr
