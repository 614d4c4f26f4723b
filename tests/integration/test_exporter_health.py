"""The exporter stays honest when Janus dies, hangs or answers garbage, and guards its event receiver."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
from aiohttp import web

from janus_exporter import config as exporter_config
from janus_exporter.exporter import Exporter
from janus_exporter.server import build_app

from support import http, scrape_samples, value

pytestmark = pytest.mark.janus
INVENTORY_METRICS = {"sfu_admin_api_rtt_seconds", "sfu_sessions_active", "sfu_active_handles",
                     "sfu_peerconnections_active", "sfu_rooms_active", "sfu_room_participants_max",
                     "sfu_room_size_participants_bucket"}


async def timed_scrape(url: str) -> tuple[dict, float]:
    started = time.monotonic()
    samples = await scrape_samples(url)
    return samples, time.monotonic() - started


async def test_killed_janus_reads_janus_up_0_at_the_next_scrape_and_1_after_a_restart(monitored_nodes):
    (exporter,) = monitored_nodes(1, JANUS_EXPORTER_DEADLINE_SECONDS="2")
    samples, _ = await timed_scrape(exporter.metrics_url)
    assert value(samples, "janus_up") == 1
    assert ("sfu_active_handles", ()) in samples

    exporter.node.process.send_signal(signal.SIGKILL)
    exporter.node.process.wait(5)
    samples, took = await timed_scrape(exporter.metrics_url)
    print(f"\nJanus killed: the next scrape answered janus_up {value(samples, 'janus_up'):g} in {took:.3f} s")
    assert value(samples, "janus_up") == 0
    assert took < 2.5, f"scrape took {took:.2f} s with Janus dead"
    assert value(samples, "janus_exporter_scrape_errors_total", reason="connection") == 1
    assert not INVENTORY_METRICS & {name for name, _ in samples}, "no inventory gauge while Janus is down"
    assert ("sfu_process_threads", ()) not in samples, "no process gauges for a dead process"
    assert "janus_up=0 (connection)" in exporter.log_path.read_text()

    exporter.node.start_and_wait()
    samples, took = await timed_scrape(exporter.metrics_url)
    print(f"Janus restarted: the next scrape answered janus_up {value(samples, 'janus_up'):g} in {took:.3f} s")
    assert value(samples, "janus_up") == 1
    assert value(samples, "sfu_process_threads") > 1, "the restarted Janus is found through its pid file"


async def test_hung_janus_reads_janus_up_0_within_the_deadline_and_recovers(monitored_nodes):
    (exporter,) = monitored_nodes(1, JANUS_EXPORTER_DEADLINE_SECONDS="1.5")
    os.kill(exporter.node.pid, signal.SIGSTOP)
    try:
        samples, took = await timed_scrape(exporter.metrics_url)
        print(f"\nJanus stopped: the scrape answered janus_up {value(samples, 'janus_up'):g} in {took:.3f} s")
        assert value(samples, "janus_up") == 0
        assert 1.4 < took < 2.5, f"scrape took {took:.2f} s against a 1.5 s deadline"
        assert value(samples, "janus_exporter_scrape_errors_total", reason="timeout") == 1
    finally:
        os.kill(exporter.node.pid, signal.SIGCONT)
    samples, _ = await timed_scrape(exporter.metrics_url)
    assert value(samples, "janus_up") == 1


async def test_event_posts_from_other_addresses_are_refused_and_garbage_is_counted_not_retried(
        lab_netns, monitored_nodes):
    (exporter,) = monitored_nodes(1)
    events_url = exporter.events_url
    # The test runs in the root namespace, whose address is not the Janus node's: refused.
    status, _ = await http(events_url, method="POST", body=b"[]")
    assert status == 403
    samples = await scrape_samples(exporter.metrics_url)
    assert value(samples, "janus_exporter_events_rejected_total", reason="source") == 1


async def fake_janus(reply: bytes) -> tuple[web.AppRunner, str]:
    """An HTTP server that answers every Admin request with ``reply`` (what a broken Janus could send)."""
    async def answer(request: web.Request) -> web.Response:
        return web.Response(body=reply, content_type="application/json")

    app = web.Application()
    app.router.add_post("/admin", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}/admin"


@pytest.mark.parametrize("reply", [b"<html>502 Bad Gateway</html>", b"[1, 2]",
                                   json.dumps({"janus": "success", "sessions": "many"}).encode(),
                                   json.dumps({"janus": "error", "error": {"code": 403, "reason": "Unauthorized"}})
                                   .encode()])
async def test_garbage_from_the_admin_api_reads_janus_up_0_with_no_partial_inventory(reply):
    runner, url = await fake_janus(reply)
    config = exporter_config.load({"JANUS_ADMIN_SECRET": "x" * 12, "JANUS_EXPORTER_ADMIN_URL": url,
                                   "JANUS_EXPORTER_PIDFILE": "/nonexistent/janus.pid"})
    exporter = Exporter(config)
    app_runner = web.AppRunner(build_app(exporter))
    await app_runner.setup()
    site = web.TCPSite(app_runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        samples = await scrape_samples(f"http://127.0.0.1:{port}/metrics")
        assert value(samples, "janus_up") == 0
        errors = sum(value(samples, "janus_exporter_scrape_errors_total", reason=r)
                     for r in ("bad_reply", "janus_error"))
        assert errors == 1
        assert not INVENTORY_METRICS & {name for name, _ in samples}, "no partial inventory"
    finally:
        await app_runner.cleanup()
        await runner.cleanup()
