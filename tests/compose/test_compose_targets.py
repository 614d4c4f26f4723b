"""The Compose target set (prometheus/targets/compose) and every URL between services name real Compose
services on ports they listen on.

A service's ports are those its image's Dockerfile EXPOSEs, those its healthcheck probes on
127.0.0.1 and the container side of its published ports. A service with ``network_mode:
service:X`` listens in X's network namespace: ``sfu-node-01:9188`` is the exporter sidecar in the
node's pod, whose hostname (and network alias) is sfu-node-01.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
TARGETS = REPO / "prometheus" / "targets" / "compose"
# Jobs whose Compose services come with a later issue; the test fails once they exist, so this list cannot rot.
PENDING_JOBS: dict[str, str] = {}
# Services Prometheus does not scrape, and why.
NOT_SCRAPED = {
    **{f"sfu-node-0{i}": "Janus has no /metrics: its exporter sidecar, in the node's network, is scraped"
       for i in range(1, 5)},
    **{f"sfu-node-0{i}-pod": "holds the node's namespaces; shapes its link, then sleeps" for i in range(1, 5)},
    "grafana": "a viewer; the lab watches the SFU platform, not its dashboards",
    "alertmanager-config": "one-shot renderer, exits",
    "prometheus-region-a": "federation profile: the global server scrapes it (/federate)",
    "prometheus-region-b": "federation profile: the global server scrapes it (/federate)",
    "prometheus-global": "federation profile: the top of the hierarchy",
    "locust-master": "load profile: Locust keeps its own statistics (web UI, CSV/HTML reports)",
    "locust-worker": "load profile: reports to the Locust master",
}


def exposed_ports(build: dict[str, Any] | None) -> set[int]:
    if not build:
        return set()
    text = (Path(build["context"]) / build["dockerfile"]).read_text()
    return {int(p) for line in re.findall(r"^EXPOSE\s+(.+)$", text, flags=re.MULTILINE)
            for p in re.findall(r"\d+", line)}


def healthcheck_ports(svc: dict[str, Any]) -> set[int]:
    test = " ".join((svc.get("healthcheck") or {}).get("test") or [])
    return {int(p) for p in re.findall(r"127\.0\.0\.1(?::|',\s*|/)(\d+)", test)}


@pytest.fixture(scope="module")
def listeners(services) -> dict[str, dict[int, str]]:
    """host name on the `lab` network -> port -> the service listening there."""
    owner = {}
    for name, svc in services.items():
        mode = svc.get("network_mode", "")
        owner[name] = mode.removeprefix("service:") if mode.startswith("service:") else name
    hosts: dict[str, dict[int, str]] = {}
    for name, svc in services.items():
        if svc.get("network_mode") == "none":
            continue
        # A pod builds the node image but runs only its link setup and sleep: what it EXPOSEs is Janus's, who joins it.
        image_ports = set() if name.endswith("-pod") else exposed_ports(svc.get("build"))
        ports = image_ports | healthcheck_ports(svc) | {int(p["target"]) for p in svc.get("ports") or []}
        host = owner[name]
        for port in ports:
            assert hosts.setdefault(host, {}).setdefault(port, name) == name, f"{host}:{port} claimed twice"
    for name, svc in services.items():
        if owner[name] == name and svc.get("hostname") not in (None, name):
            hosts[svc["hostname"]] = hosts.get(name, {})
    return hosts


def resolve(listeners: dict[str, dict[int, str]], address: str) -> str | None:
    host, _, port = address.rpartition(":")
    return listeners.get(host, {}).get(int(port))


def target_groups() -> dict[str, list[dict[str, Any]]]:
    return {path.stem: yaml.safe_load(path.read_text()) for path in sorted(TARGETS.glob("*.yml"))}


def test_every_compose_target_is_a_compose_service_on_a_port_it_listens_on(listeners):
    unresolved = {}
    for job, groups in target_groups().items():
        for group in groups:
            for target in group["targets"]:
                if resolve(listeners, target) is None:
                    unresolved.setdefault(job, []).append(target)
    assert set(unresolved) == set(PENDING_JOBS), (
        f"targets naming no Compose service and port: {unresolved}; pending on purpose: {PENDING_JOBS}")


def test_sfu_targets_are_the_exporter_sidecars_in_their_nodes_network_and_carry_the_node_name(listeners):
    groups = target_groups()["sfu_nodes"]
    seen = []
    for group in groups:
        (target,) = group["targets"]
        node = group["labels"]["node"]
        assert target == f"{node}:9188"
        assert resolve(listeners, target) == f"{node}-exporter"
        seen.append(node)
    assert seen == [f"sfu-node-0{i}" for i in range(1, 5)]


def test_every_compose_service_is_scraped_or_listed_with_the_reason_it_is_not(services, listeners):
    scraped = {resolve(listeners, t) for groups in target_groups().values() for g in groups for t in g["targets"]}
    for name in services:
        if name in NOT_SCRAPED:
            assert name not in scraped, f"{name} is scraped: remove it from NOT_SCRAPED"
        else:
            assert name in scraped, f"{name} has metrics but no target in prometheus/targets/compose"
    assert set(NOT_SCRAPED) <= set(services)


def service_urls(services) -> dict[str, list[str]]:
    """Every URL one part of the stack uses to reach another, by where it is written."""
    env = services["signaling"]["environment"]
    urls = {
        "SIGNALING_SFU_NODES": [i.split("=", 1)[1] for i in env["SIGNALING_SFU_NODES"].split(",")],
        "SIGNALING_SFU_EXPORTERS": [i.split("=", 1)[1] for i in env["SIGNALING_SFU_EXPORTERS"].split(",")],
    }
    datasources = yaml.safe_load((REPO / "grafana/provisioning/datasources/datasources.yml").read_text())
    urls["grafana datasources"] = [d["url"] for d in datasources["datasources"]]
    alertmanager = yaml.safe_load((REPO / "alertmanager/alertmanager.yml").read_text())
    urls["alertmanager webhooks"] = [c["url"] for r in alertmanager["receivers"] for c in r.get("webhook_configs", [])]
    for path in sorted((REPO / "prometheus/federation").glob("*.yml")):
        document = yaml.safe_load(path.read_text())
        urls[f"federation/{path.name}"] = [f"http://{t}" for job in document["scrape_configs"]
                                           for sc in job.get("static_configs", []) for t in sc["targets"]]
    return urls


def test_every_url_between_services_names_a_compose_service_on_a_port_it_listens_on(services, listeners):
    urls = service_urls(services)
    assert urls["SIGNALING_SFU_NODES"] and urls["federation/global.yml"]
    wrong = {}
    for where, values in urls.items():
        for url in values:
            parts = urlsplit(url)
            if resolve(listeners, f"{parts.hostname}:{parts.port}") is None:
                wrong.setdefault(where, []).append(url)
    assert not wrong, wrong


def test_signaling_reaches_janus_on_its_websocket_port_and_the_exporters_on_theirs(services, listeners):
    urls = service_urls(services)
    for i, (ws, metrics) in enumerate(zip(urls["SIGNALING_SFU_NODES"], urls["SIGNALING_SFU_EXPORTERS"],
                                          strict=True), start=1):
        assert resolve(listeners, urlsplit(ws).netloc) == f"sfu-node-0{i}"
        assert resolve(listeners, urlsplit(metrics).netloc) == f"sfu-node-0{i}-exporter"
        assert urlsplit(metrics).path == "/metrics"
