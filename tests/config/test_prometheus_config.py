"""prometheus/prometheus.yml and its two target sets: promtool, the files' shape, and a real Prometheus's view."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import urllib.request
from pathlib import Path

import pytest
import yaml

from lab.rule_overrides import TARGET_SETS, render_prometheus
from sfu_stack.readiness import wait_until

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO / "prometheus"
JOBS = {"signaling_backend", "sfu_nodes", "node_exporter", "prometheus", "alertmanager", "alert_sink", "loadtest_bots"}
NODES = [f"sfu-node-0{i}" for i in range(1, 5)]
NATIVE_PORTS = {"signaling_backend": [8080], "sfu_nodes": [9188, 9189, 9190, 9191], "node_exporter": [9100],
                "prometheus": [9090], "alertmanager": [9093], "alert_sink": [9099], "loadtest_bots": [9400]}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60)


def config() -> dict:
    return yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as reply:
        return json.load(reply)


def test_promtool_accepts_the_committed_config_with_its_rules_and_finds_every_target_file():
    run = promtool("check", "config", str(PROMETHEUS_DIR / "prometheus.yml"))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "WARNING" not in run.stdout + run.stderr, run.stdout + run.stderr
    assert re.search(r"SUCCESS: \d+ rule files found", run.stdout), run.stdout


def test_the_repository_points_targets_active_at_the_compose_set():
    active = PROMETHEUS_DIR / "targets" / "active"
    assert active.is_symlink() and Path(active.readlink()) == Path("compose")


@pytest.mark.parametrize("target_set", TARGET_SETS)
def test_promtool_accepts_the_config_laid_out_for_each_target_set(target_set, tmp_path):
    config_file = render_prometheus(tmp_path, target_set=target_set)
    run = promtool("check", "config", str(config_file))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "WARNING" not in run.stdout + run.stderr, run.stdout + run.stderr


def test_scrape_interval_is_15s_with_env_and_region_external_labels_and_the_sfu_job_leaves_10s_for_the_sweep():
    cfg = config()
    assert cfg["global"]["scrape_interval"] == "15s"
    assert set(cfg["global"]["external_labels"]) == {"env", "region"}
    jobs = {job["job_name"]: job for job in cfg["scrape_configs"]}
    assert set(jobs) == JOBS
    assert jobs["sfu_nodes"]["scrape_timeout"] == "10s"
    for job in jobs.values():
        assert [sd["files"] for sd in job["file_sd_configs"]] == [[f"targets/active/{job['job_name']}*.yml"]]


@pytest.mark.parametrize("target_set", TARGET_SETS)
def test_each_target_set_has_every_job_with_service_env_and_region_labels_and_named_sfu_nodes(target_set):
    folder = PROMETHEUS_DIR / "targets" / target_set
    assert {p.stem for p in folder.glob("*.yml")} == JOBS
    for job in JOBS:
        groups = yaml.safe_load((folder / f"{job}.yml").read_text())
        assert groups, job
        addresses = []
        for group in groups:
            assert {"service", "env", "region"} <= set(group["labels"]), (job, group)
            for target in group["targets"]:
                host, port = target.rsplit(":", 1)
                assert host and port.isdigit(), target
                addresses.append((host, int(port)))
        if target_set == "native":
            # Inside the lab namespace, except the bots: they run in the root namespace (aiortc needs the
            # veth host end), reached on that end (tests/unit/test_topology.py checks the address).
            expected_host = "198.18.125.1" if job == "loadtest_bots" else "127.0.0.1"
            assert {h for h, _ in addresses} == {expected_host}, job
            assert [p for _, p in addresses] == NATIVE_PORTS[job], job
        else:
            assert all(not h[0].isdigit() for h, _ in addresses), f"{job}: Compose targets are service names"
        if job == "sfu_nodes":
            assert [g["labels"]["node"] for g in groups] == NODES
            if target_set == "compose":
                assert [h for h, _ in addresses] == NODES


def test_a_real_prometheus_with_the_native_set_names_sfu_targets_after_their_nodes_and_loads_every_rule(tmp_path):
    port = free_port()
    config_file = render_prometheus(tmp_path / "config", target_set="native")
    process = subprocess.Popen(
        ["prometheus", f"--config.file={config_file}", f"--web.listen-address=127.0.0.1:{port}",
         f"--storage.tsdb.path={tmp_path / 'data'}", "--log.level=warn"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        targets: list[dict] = []

        def discovered() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"prometheus exited: {process.stderr.read()}")
            try:
                targets[:] = get_json(f"{base}/api/v1/targets")["data"]["activeTargets"]
            except OSError:
                return False
            return {t["labels"]["job"] for t in targets} == JOBS

        wait_until(discovered, timeout=20, what="Prometheus discovers every job's targets")
        sfu = sorted((t for t in targets if t["labels"]["job"] == "sfu_nodes"), key=lambda t: t["labels"]["node"])
        assert [(t["labels"]["instance"], t["labels"]["node"]) for t in sfu] == [(n, n) for n in NODES]
        assert [t["scrapeUrl"] for t in sfu] == [f"http://127.0.0.1:{p}/metrics" for p in NATIVE_PORTS["sfu_nodes"]]
        assert {t["scrapeTimeout"] for t in sfu} == {"10s"}
        for t in targets:
            assert t["scrapeInterval"] == "15s"
            assert {"service", "env", "region"} <= set(t["labels"]), t["labels"]

        groups: list[dict] = []

        def rules_loaded() -> bool:
            groups[:] = get_json(f"{base}/api/v1/rules")["data"]["groups"]
            return bool(groups)

        wait_until(rules_loaded, timeout=20, what="Prometheus loads the rule groups")
        committed = [g["name"] for p in sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
                     for g in yaml.safe_load(p.read_text())["groups"]]
        assert sorted(g["name"] for g in groups) == sorted(committed)
        assert all(r["health"] != "err" for g in groups for r in g["rules"])
    finally:
        process.terminate()
        process.wait(timeout=20)
