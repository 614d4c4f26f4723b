"""The Compose stack for real: compose.yaml, as users run it, on this machine's Docker Engine.

The images come from ``make images`` (tests/compose/images/build.py: stand-ins for the upstream
images from Debian's packages of the same versions; our own images from their Dockerfiles). The
stack runs every default-profile service but Grafana (no Grafana image can be built here), with the
CI-sized incident's CPU budget and media link per SFU node (``SFU_NODE_CPUS``, ``SFU_NODE_LINK_KBIT``
in ``.env``, as README's Compose section says), under its own project name so a user's stack is
never touched. The tests run in file order on one stack: healthy, targets up and each pod's link
shaped, Locust, the ``cpus:`` limit under a busy loop, the CI-sized incident and node-down through
``loadtest-bots``, a Prometheus restart that keeps its data, and a teardown that leaves nothing.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from loadtest.scenarios.incident import link_kbit_for, node_cpus_for
from sfu_stack import topology
from sfu_stack.compose import PROJECT_LABEL, SERVICE_LABEL, ComposeControl
from sfu_stack.prom import get_json, query
from sfu_stack.readiness import http_status, wait_until

from support import assert_incident_story

pytestmark = pytest.mark.compose
docker = pytest.importorskip("docker", reason="the Docker SDK is in the dev extras: make deps")

PROJECT = "sfu-lab-compose-test"
CI_SIZE = 60  # the incident's mega-room, as in tests/integration/test_scenarios.py
PROMETHEUS = f"http://127.0.0.1:{topology.PROMETHEUS_PORT}"
WITHOUT = ("grafana",)  # no image here (README: "What differs on the test machines")


@dataclass
class ComposeStack:
    env_file: Path
    services: list[str]
    client: Any
    tools: Any
    healthy_after: float = 0.0
    facts: dict[str, Any] = field(default_factory=dict)

    def compose(self, *args: str, timeout: float = 300, profiles: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
        secrets = set(self.tools.secrets)
        env = {k: v for k, v in os.environ.items() if k not in secrets and not k.startswith("COMPOSE_")}
        return subprocess.run(
            [self.tools.binary, "-f", str(self.tools.compose_file), "--project-directory", str(self.tools.repo),
             "--env-file",
             str(self.env_file), "-p", PROJECT, *(a for p in profiles for a in ("--profile", p)), *args],
            capture_output=True, text=True, timeout=timeout, env=env, cwd=self.tools.repo)

    def bots(self, *args: str, timeout: float) -> subprocess.CompletedProcess:
        # --use-aliases: the service's name on the network, which Prometheus scrapes (job loadtest_bots).
        return self.compose("run", "--rm", "--use-aliases", "loadtest-bots", *args, timeout=timeout,
                            profiles=("load",))

    def result(self, name: str) -> dict[str, Any]:
        done = self.compose("run", "--rm", "--no-deps", "--entrypoint", "cat", "loadtest-bots",
                            f"/results/{name}.json", profiles=("load",), timeout=120)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def containers(self) -> list[Any]:
        return self.client.containers.list(all=True, filters={"label": f"{PROJECT_LABEL}={PROJECT}"})

    def leftovers(self) -> dict[str, list[str]]:
        label = {"label": f"{PROJECT_LABEL}={PROJECT}"}
        return {"containers": [c.name for c in self.containers()],
                "networks": [n.name for n in self.client.networks.list(filters=label)],
                "volumes": [v.name for v in self.client.volumes.list(filters=label)]}


def required_images(compose_file: Path) -> list[str]:
    import yaml

    services = yaml.safe_load(compose_file.read_text())["services"]
    return sorted({s["image"] for name, s in services.items() if name not in WITHOUT})


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, compose_tools: Any) -> Iterator[ComposeStack]:
    client = docker.from_env()
    missing = [tag for tag in required_images(compose_tools.compose_file) if not client.images.list(name=tag)]
    assert not missing, f"images not built: {missing}: run `make images` (make test does)"
    budget = node_cpus_for(CI_SIZE)
    env_file = compose_tools.write_env(tmp_path_factory.mktemp("compose-stack") / ".env", SFU_NODE_CPUS=str(budget),
                                       SFU_NODE_LINK_KBIT=str(link_kbit_for(CI_SIZE)))
    probe = ComposeStack(env_file, [], client, compose_tools)
    listed = probe.compose("config", "--services")
    assert listed.returncode == 0, listed.stderr
    probe.services = sorted(s for s in listed.stdout.split() if s not in WITHOUT)
    probe.compose("--profile", "load", "down", "-v", "--remove-orphans", timeout=180)
    started = time.monotonic()
    up = probe.compose("up", "-d", "--wait", *probe.services, timeout=600)
    probe.healthy_after = time.monotonic() - started
    print(f"\ncompose up -d --wait: every service healthy after {probe.healthy_after:.1f} s")
    try:
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        yield probe
    finally:
        probe.compose("--profile", "load", "down", "-v", "--remove-orphans", timeout=300)
        print(f"compose stack figures: {json.dumps(probe.facts)}")


def test_every_service_is_healthy_and_the_one_shot_renderer_succeeded(stack):
    by_service = {c.labels[SERVICE_LABEL]: c for c in stack.containers()}
    assert sorted(by_service) == stack.services
    for name, container in by_service.items():
        state = container.attrs["State"]
        if name == "alertmanager-config":
            assert state["Status"] == "exited" and state["ExitCode"] == 0, name
        elif "Health" in state:
            assert state["Health"]["Status"] == "healthy", name
        else:
            assert name.endswith("-pod") and state["Status"] == "running", name
    stack.facts["healthy_after_s"] = round(stack.healthy_after, 1)


def test_every_target_is_up_and_each_exporter_reads_its_janus_cpu_through_the_pods_pid_namespace(stack):
    def all_up() -> bool:
        targets = get_json(f"{PROMETHEUS}/api/v1/targets")["data"]["activeTargets"]
        return all(t["health"] == "up" for t in targets if t["labels"]["job"] != "loadtest_bots") and len(targets) > 6

    wait_until(all_up, timeout=90, what="every Prometheus target up", interval=1)
    budget = node_cpus_for(CI_SIZE)

    def cpu_read() -> bool:
        cpu = {s["metric"]["node"]: float(s["value"][1]) for s in query(PROMETHEUS, "sfu_process_cpu_seconds_total")}
        return sorted(cpu) == list(topology.NODE_NAMES) and all(v > 0 for v in cpu.values())

    wait_until(cpu_read, timeout=60, what="each exporter reads its Janus's CPU time", interval=1)
    assert {s["metric"]["node"]: s["value"][1] for s in query(PROMETHEUS, "janus_up")} == dict.fromkeys(
        topology.NODE_NAMES, "1")
    budgets = {s["metric"]["node"]: float(s["value"][1]) for s in query(PROMETHEUS, "sfu_cpu_budget_cores")}
    assert budgets == dict.fromkeys(topology.NODE_NAMES, budget)
    control = ComposeControl(stack.client, PROJECT)
    assert {node: control.cpu_limit(node) for node in control.nodes()} == dict.fromkeys(topology.NODE_NAMES, budget)


def test_each_pod_shaped_its_nodes_link_and_the_exporter_reads_it_from_the_pods_namespace(stack):
    kbit = link_kbit_for(CI_SIZE)
    control = ComposeControl(stack.client, PROJECT)
    assert {node: control.link_kbit(node) for node in control.nodes()} == dict.fromkeys(topology.NODE_NAMES, kbit)

    def links() -> dict[str, float]:
        found = query(PROMETHEUS, "sfu_link_capacity_bytes_per_second")
        return {s["metric"]["node"]: float(s["value"][1]) for s in found}

    wait_until(lambda: sorted(links()) == list(topology.NODE_NAMES), timeout=60,
               what="each node's link scraped", interval=1)
    assert links() == dict.fromkeys(topology.NODE_NAMES, kbit * 1000 / 8)
    assert {s["metric"]["node"]: s["value"][1] for s in query(PROMETHEUS, "sfu_link_up")} == dict.fromkeys(
        topology.NODE_NAMES, "1")
    # The pod kept no capability for itself: pod.sh dropped them, and root, before it slept.
    pod = control.container(topology.pod_service("sfu-node-04"))
    find_sleep = ("import pathlib\nfor p in pathlib.Path('/proc').glob('[0-9]*'):\n"
                  "    if (p / 'comm').read_text().strip() == 'sleep': print((p / 'status').read_text())")
    sleeper = pod.exec_run(["python3", "-c", find_sleep]).output.decode()
    assert "CapEff:\t0000000000000000" in sleeper and re.search(r"^Uid:\t10001\b", sleeper, re.M), sleeper


def test_locust_master_and_worker_run_headless_for_30_s_against_compose_signaling_with_no_failure(stack):
    worker = stack.compose("run", "-d", "--rm", "--no-deps", "--name", f"{PROJECT}-locust-worker-test",
                           "locust-worker", profiles=("load",), timeout=120)
    assert worker.returncode == 0, worker.stderr
    # The locustfile's load shape drives the users: 10 s ramp to 20 users, then 20 s at 20.
    master = stack.compose(
        "run", "--rm", "--use-aliases", "-e", "LOCUST_STAGES=10:20:4,20:20:4", "locust-master",
        "-f", "/app/loadtest/locustfile.py", "--master", "--headless", "--expect-workers", "1",
        "--host", "ws://signaling:8080", "--only-summary", profiles=("load",), timeout=300)
    output = master.stdout + master.stderr
    aggregated = re.search(r"^\s*Aggregated\s+(\d+)\s+(\d+)\(", output, flags=re.MULTILINE)
    assert aggregated, output[-3000:]
    requests, failures = int(aggregated.group(1)), int(aggregated.group(2))
    stack.facts["locust"] = {"requests": requests, "failures": failures}
    print(f"locust master + 1 worker, 20 users, 30 s: {requests} requests, {failures} failures")
    assert master.returncode == 0 and "Shape test completed" in output, output[-3000:]
    assert requests > 100 and failures == 0, output[-3000:]


class CpuSampler(threading.Thread):
    """Samples a node's Janus CPU time from its container's cgroup (``docker stats``) every ``every`` s,
    timed by the engine's read times."""

    def __init__(self, control: ComposeControl, node: str, every: float = 5.0) -> None:
        super().__init__(daemon=True)
        self.control, self.node, self.every = control, node, every
        self.rates: list[float] = []
        self.done = threading.Event()

    def run(self) -> None:
        last = self.control.janus_cpu_sample(self.node)
        while not self.done.wait(self.every):
            now = self.control.janus_cpu_sample(self.node)
            self.rates.append((now[1] - last[1]) / (now[0] - last[0]))
            last = now


def test_the_cpus_limit_holds_a_busy_janus_container_at_its_budget(stack):
    """A busy loop inside sfu-node-04's Janus container (the container's cgroup, where ``cpus:``
    applies) may use the budget and never more, measured from the engine's stats."""
    control = ComposeControl(stack.client, PROJECT)
    limit = control.cpu_limit("sfu-node-04")
    assert limit == node_cpus_for(CI_SIZE)
    janus = control.container("sfu-node-04")
    sampler = CpuSampler(control, "sfu-node-04", every=3.0)
    busy = janus.exec_run(["python3", "-c", "import time\nend = time.time() + 20\nwhile time.time() < end: pass"],
                          detach=True)
    assert busy is not None
    sampler.start()
    try:
        wait_until(lambda: len(sampler.rates) >= 5, timeout=60, what="five 3 s samples of sfu-node-04's CPU")
    finally:
        sampler.done.set()
        sampler.join()
    peak = max(sampler.rates)
    stack.facts["cpus_limit"] = {"limit_cores": limit, "rates": [round(r, 4) for r in sampler.rates]}
    print(f"sfu-node-04 under a busy loop, 3 s samples: {[round(r, 4) for r in sampler.rates]} (limit {limit})")
    # The quota is enforced per 100 ms period: over 3 s the usage cannot exceed it beyond a period's
    # rounding at each end (2 x 100 ms x limit in 3 s: under 7 %).
    assert peak <= limit * 1.07, sampler.rates
    assert peak >= limit * 0.9, f"the busy loop never reached the limit, so the check proves nothing: {sampler.rates}"


def test_the_ci_sized_incident_through_loadtest_bots_melts_the_hot_nodes_link_and_the_fix_resolves_it(stack):
    """The whole story with the committed rules (for: 5m): alerts fire and resolve for sfu-node-04 only,
    the notifications reach the sink through Alertmanager, and the chain (link drops before the NACK
    storm, on sfu-node-04's pod only) is what the pod's shaped eth0 did. Unlike natively, the link is
    not asserted clear after the fix: in two of three runs here the mega-room alone still dropped in
    bursts after it (2-3 %; docs/loadtest.md); facts.spiral records it."""
    control = ComposeControl(stack.client, PROJECT)
    sampler = CpuSampler(control, "sfu-node-04")
    sampler.start()
    try:
        done = stack.bots("incident", "--size", str(CI_SIZE), "--out", "/results/incident.json", timeout=40 * 60)
    finally:
        sampler.done.set()
        sampler.join()
    print(done.stdout[-4000:])
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    result = stack.result("incident")
    assert_incident_story(result, link_clears_after_fix=False)
    for alert in ("SFUHighCPU", "SFUNackStorm"):
        assert result["facts"]["sink_notified_at"][f"{alert} firing"] is not None, f"{alert} not delivered to the sink"
    stack.facts["incident"] = {"alerts": result["alerts"], "janus_04_peak_cores": round(max(sampler.rates), 4),
                               "bots_cpu": result["facts"].get("bots_cpu_share_of_a_core"),
                               "link_dropped_packets": result["facts"]["link_dropped_packets"],
                               "spiral": result["facts"]["spiral"]}
    # Over 5 s the quota cannot be exceeded beyond a 100 ms period's rounding at each end (4 %).
    assert max(sampler.rates) <= control.cpu_limit("sfu-node-04") * 1.04, sampler.rates


def test_node_down_through_loadtest_bots_kills_and_restarts_a_janus_container(stack):
    done = stack.bots("node-down", "--out", "/results/node-down.json", timeout=20 * 60)
    print(done.stdout[-3000:])
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    result = stack.result("node-down")
    span = next(a for a in result["alerts"] if a["alertname"] == "JanusDown")
    assert span["node"] == "sfu-node-02" and span["resolved_at"] is not None
    assert result["facts"]["new_room_went_to"] != "sfu-node-02"
    assert result["facts"]["sink_notified_at"]["JanusDown firing"] is not None, "not delivered to the sink"
    stack.facts["node_down"] = result["alerts"]
    exporter = next(c for c in stack.containers() if c.labels[SERVICE_LABEL] == "sfu-node-02-exporter")
    assert exporter.attrs["RestartCount"] == 0, "the exporter outlived its Janus (it lives in the node's pod)"


def test_a_prometheus_restart_keeps_the_series_from_before_it(stack):
    before = time.time() - 30
    promql = 'up{job="signaling_backend"}'
    assert get_json(f"{PROMETHEUS}/api/v1/query", query=promql, time=str(before))["data"]["result"]
    done = stack.compose("restart", "prometheus", timeout=180)
    assert done.returncode == 0, done.stderr

    wait_until(lambda: http_status(f"{PROMETHEUS}/-/ready") == 200, timeout=120, what="Prometheus ready again",
               interval=1)
    kept = get_json(f"{PROMETHEUS}/api/v1/query", query=promql, time=str(before))["data"]["result"]
    assert kept, "the series from before the restart are gone (prometheus-data is not a named volume?)"


def test_down_leaves_no_container_network_or_volume(stack):
    done = stack.compose("--profile", "load", "down", "-v", "--remove-orphans", timeout=300)
    assert done.returncode == 0, done.stderr
    assert stack.leftovers() == {"containers": [], "networks": [], "volumes": []}
