"""`lab up`, `lab status`, `lab logs`, `lab demo`, `lab down`: the native stack as a user drives it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from lab import cgroups, netns
from lab.native import Entry, entry_alive
from sfu_stack import topology

pytestmark = pytest.mark.janus


def lab(home: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lab.cli", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "LAB_HOME": str(home)})


def test_lab_up_status_demo_logs_and_down_leave_nothing_behind(tmp_path):
    assert netns.UP_NAME not in netns.existing(), "a native stack is already up on this machine: `lab down` first"
    home = tmp_path / "lab"
    started = lab(home, "up")
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        assert "all components healthy" in started.stdout
        state = json.loads((home / "state.json").read_text())
        assert f"Prometheus     http://{state['netns']['ns_ip']}:{topology.PROMETHEUS_PORT}" in started.stdout
        secrets_file = home / "secrets.env"
        assert secrets_file.stat().st_mode & 0o777 == 0o600, "generated secrets are private"

        status = lab(home, "status")
        assert status.returncode == 0, status.stdout
        names = {s.name for s in topology.COMPONENTS}
        rows = {line.split()[0]: line.split()[-1] for line in status.stdout.splitlines()
                if line.split() and line.split()[0] in names}
        expected = {s.name: ("healthy" if s.native and s.port else "done" if s.native else "absent")
                    for s in topology.COMPONENTS}
        assert rows == expected
        assert "grafana: no Grafana package" in status.stdout

        demo = lab(home, "demo", "--seconds", "3", "--subscribers", "1")
        assert demo.returncode == 0, demo.stdout + demo.stderr
        assert "subscriber 0 ICE: connected" in demo.stdout
        assert "egress bit/s per node        sfu-node-01" in demo.stdout

        assert "listening" in lab(home, "logs", "signaling").stdout
        assert lab(home, "logs", "nonexistent").returncode == 1

        janus_pids = [e["pid"] for e in state["entries"] if e["name"].startswith("sfu-node-") and e["cgroup"]]
        if cgroups.available()[0]:
            assert len(janus_pids) == 4, "each SFU node runs under its CPU limit"
            quota = (Path(state["entries"][0]["cgroup"]) / "cpu.cfs_quota_us").read_text().strip()
            assert int(quota) == int(topology.SFU_NODE_CPUS_DEFAULT * cgroups.PERIOD_US)

        # A component that dies shows as dead, with the end of its log.
        victim = next(e for e in state["entries"] if e["name"] == "alert-sink")
        os.kill(victim["pid"], signal.SIGKILL)
        status = lab(home, "status")
        assert status.returncode == 1
        assert "alert-sink is dead; end of its log" in status.stdout
    finally:
        stopped = lab(home, "down")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    entries = [Entry(**e) for e in state["entries"]]
    assert [e.name for e in entries if entry_alive(e)] == []
    assert netns.UP_NAME not in netns.existing()
    assert not (cgroups.CPU_ROOT / cgroups.GROUP).exists()
    assert not (home / "state.json").exists()
    assert lab(home, "status").returncode == 1
