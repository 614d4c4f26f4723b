"""The native topology and compose.yaml describe the same stack; prerequisites are named when missing."""

from __future__ import annotations

import pytest
import yaml

from lab import monitoring, netns
from sfu_stack import topology


def test_native_and_compose_list_the_same_components():
    assert {s.name for s in topology.COMPONENTS} == set(topology.compose_services())


def test_the_native_target_set_points_at_the_native_ports():
    expected = {
        "signaling_backend": [topology.SIGNALING_PORT],
        "sfu_nodes": [topology.exporter_port(i) for i in range(len(topology.NODE_NAMES))],
        "node_exporter": [topology.NODE_EXPORTER_PORT],
        "prometheus": [topology.PROMETHEUS_PORT],
        "alertmanager": [topology.ALERTMANAGER_PORT],
        "alert_sink": [topology.ALERT_SINK_PORT],
    }
    for job, ports in expected.items():
        groups = yaml.safe_load((topology.REPO / "prometheus/targets/native" / f"{job}.yml").read_text())
        assert [int(t.rsplit(":", 1)[1]) for g in groups for t in g["targets"]] == ports, job


def test_the_native_bots_target_is_the_host_end_of_the_lab_up_namespace():
    groups = yaml.safe_load((topology.REPO / "prometheus/targets/native/loadtest_bots.yml").read_text())
    subnet = list(netns.NETWORK.subnets(new_prefix=30))[netns.UP_SLOT]
    assert [t for g in groups for t in g["targets"]] == [f"{next(subnet.hosts())}:{topology.BOTS_METRICS_PORT}"]


def test_native_sfu_targets_carry_the_node_names_in_order():
    groups = yaml.safe_load((topology.REPO / "prometheus/targets/native/sfu_nodes.yml").read_text())
    assert [g["labels"]["node"] for g in groups] == list(topology.NODE_NAMES)


def test_compose_gives_each_sfu_node_the_cpu_budget_its_exporter_reports():
    services = topology.compose_services()
    for name in topology.NODE_NAMES:
        assert str(services[name]["cpus"]) == "${SFU_NODE_CPUS:-1}"
        assert float(str(services[name]["cpus"]).split(":-")[1].rstrip("}")) == topology.SFU_NODE_CPUS_DEFAULT
        env = services[f"{name}-exporter"]["environment"]
        budget = env["JANUS_EXPORTER_CPU_BUDGET_CORES"] if isinstance(env, dict) else next(
            e.split("=", 1)[1] for e in env if e.startswith("JANUS_EXPORTER_CPU_BUDGET_CORES="))
        assert budget == "${SFU_NODE_CPUS:-1}"


def test_a_missing_monitoring_binary_names_the_make_target(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(monitoring.MissingPrerequisite, match="make deps"):
        monitoring.binary("prometheus")
