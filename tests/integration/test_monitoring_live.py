"""Prometheus and Alertmanager, with the committed configuration, against the live services.

One Janus node with its exporter, the signaling service, node_exporter and the alert sink run for
real; a publisher sends media to a lossy subscriber and a client presents a bad token. Prometheus
(committed rules with the lab's fast override, a 1 s scrape interval so rates exist within
seconds) must see every target up and answer every dashboard query with data; killing Janus must
bring ``JanusDown`` through Alertmanager to the sink.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest
import yaml

from alert_sink.amconfig import render_alertmanager
from lab.dashboards import panel_queries, variable_queries
from lab.monitoring import Alertmanager, AlertSink, NodeExporter, Prometheus
from lab.rule_overrides import render_prometheus
from lab.stack import free_port
from loadtest.bots.peers import PacketLoss, SyntheticVideo, bind_ice_to, new_peer_connection, publish, subscribe
from sfu_stack.readiness import wait_until_async
from signaling.client import SignalingClient

from support import token, ws_url

pytestmark = pytest.mark.janus
REPO = Path(__file__).resolve().parents[2]
SCRAPE_INTERVAL = "1s"


def quicken(config: Path) -> None:
    """Scrape and evaluate every second (the test's only change to the committed prometheus.yml)."""
    document = yaml.safe_load(config.read_text())
    document["global"].update(scrape_interval=SCRAPE_INTERVAL, evaluation_interval=SCRAPE_INTERVAL,
                              scrape_timeout=SCRAPE_INTERVAL)
    for job in document["scrape_configs"]:
        job.pop("scrape_timeout", None)
    config.write_text(yaml.safe_dump(document, sort_keys=False))


async def test_prometheus_scrapes_every_target_runs_every_dashboard_query_and_janus_down_reaches_the_sink(
        lab_netns, monitored_nodes, signaling_server, tmp_path):
    (exporter,) = monitored_nodes(1, JANUS_EXPORTER_CPU_BUDGET_CORES="1")
    server = await signaling_server([exporter.node])
    signaling_port = server.port
    workdir = tmp_path / "monitoring"
    sink = AlertSink(workdir, port=free_port())
    node_exporter = NodeExporter(workdir, port=free_port())
    alertmanager = Alertmanager(render_alertmanager(workdir / "alertmanager", sink_url=sink.webhook_url,
                                                    timings={"group_wait": "1s"}), workdir, port=free_port())
    prometheus_port = free_port()
    config = render_prometheus(workdir / "prometheus", target_set="native",
                               overrides_file=REPO / "prometheus/overrides/fast.yml", targets={
        "signaling_backend": [{"targets": [f"127.0.0.1:{signaling_port}"]}],
        "sfu_nodes": [{"targets": [f"{exporter.address[0]}:{exporter.address[1]}"],
                       "labels": {"node": exporter.node.node_name}}],
        "node_exporter": [{"targets": [f"127.0.0.1:{node_exporter.port}"]}],
        "prometheus": [{"targets": [f"127.0.0.1:{prometheus_port}"]}],
        "alertmanager": [{"targets": [f"127.0.0.1:{alertmanager.port}"]}],
        "alert_sink": [{"targets": [f"127.0.0.1:{sink.port}"]}],
        "loadtest_bots": [],
    })
    quicken(config)
    prometheus = Prometheus(config, workdir, port=prometheus_port)
    components = [sink, node_exporter, alertmanager, prometheus]
    bind_ice_to(lab_netns.host_ip)
    publisher = await SignalingClient.connect(ws_url(server))
    viewer = await SignalingClient.connect(ws_url(server))
    pub_pc, sub_pc = new_peer_connection(), new_peer_connection()
    try:
        for component in components:
            await asyncio.to_thread(component.start_and_wait)
        await publisher.join("watched", token("watched"), display="pub")
        assert await publish(publisher, pub_pc, video=SyntheticVideo()) == "connected"
        joined = await viewer.join("watched", token("watched"), role="subscriber")
        feed = await viewer.first_feed(joined)
        assert (await subscribe(viewer, sub_pc, feed, loss=PacketLoss(0.1, after=3)))[0] == "connected"
        intruder = await SignalingClient.connect(ws_url(server))
        refused = await intruder.join("watched", "not-a-token")
        assert refused["type"] == "error", refused
        await intruder.close()

        async def all_up() -> bool:
            targets = await asyncio.to_thread(prometheus.targets)
            return len(targets) == 6 and all(t["health"] == "up" for t in targets)

        await wait_until_async(all_up, timeout=20, what="all six targets up")
        targets = await asyncio.to_thread(prometheus.targets)
        sfu = [t for t in targets if t["labels"]["job"] == "sfu_nodes"]
        assert [t["labels"]["instance"] for t in sfu] == ["sfu-node-01"]

        queries = panel_queries()
        assert len(queries) >= 10
        missing: dict[str, str] = {}

        # This node's media link is not shaped (no htb class for the exporter to read): the exporter
        # says so with sfu_link_up 0, and the Link panels, which read the shaped link's series, are
        # empty by design here. Every other query must return data.
        # The bots' own series (job loadtest_bots) exist only while a scenario runs its bots; this
        # test scrapes none.
        unshaped = [q for q in queries if "sfu_link_" in q.promql or 'job="loadtest_bots"' in q.promql]
        assert unshaped, "the node dashboard has a Link row"

        async def every_query_has_data() -> bool:
            missing.clear()
            link_up = await asyncio.to_thread(prometheus.query, 'sfu_link_up{job="sfu_nodes"}')
            if [s["value"][1] for s in link_up] != ["0"]:
                missing["sfu_link_up"] = f"expected 0 for an unshaped link, got {link_up}"
            for q in [*(q for q in queries if q not in unshaped), *variable_queries()]:
                try:
                    result = await asyncio.to_thread(prometheus.query, q.promql)
                except RuntimeError as exc:
                    raise AssertionError(f"{q}: {exc}") from exc
                if not result:
                    missing[f"{q.dashboard}/{getattr(q, 'panel', None) or q.variable}"] = q.promql
            return not missing

        try:
            await wait_until_async(every_query_has_data, timeout=90, interval=2,
                                   what="every dashboard query returns data")
        except TimeoutError as exc:
            raise AssertionError(f"queries without data: {missing}") from exc

        print(f"\n{len(targets)} targets up; {len(queries)} panel queries and {len(variable_queries())} variable"
              " queries answer with data")
        exporter.node.signal(signal.SIGKILL)
        killed = time.monotonic()

        async def janus_down_delivered() -> bool:
            notifications = await asyncio.to_thread(sink.notifications)
            return any(alert["labels"].get("alertname") == "JanusDown" and alert["status"] == "firing"
                       and alert["labels"].get("instance") == "sfu-node-01"
                       for n in notifications for alert in n["alerts"])

        await wait_until_async(janus_down_delivered, timeout=60, interval=1,
                               what="JanusDown for sfu-node-01 reaches the sink through Alertmanager")
        print(f"JanusDown reached the sink {time.monotonic() - killed:.1f} s after Janus was killed")
    finally:
        await pub_pc.close()
        await sub_pc.close()
        await publisher.close()
        await viewer.close()
        for component in reversed(components):
            component.stop()
