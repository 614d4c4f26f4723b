"""The labs' tests: one native stack (`lab up` in a temporary LAB_HOME) and the synthetic incident."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab import netns
from lab.labs.common import Answers, Check, LiveStack
from lab.native import NativeStack
from sfu_stack.readiness import NotReady, wait_until

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "report"))
from synthetic_incident import Incident, backfilled_prometheus  # noqa: E402  (a helper of tests/report)


def lab(home: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lab.cli", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "LAB_HOME": str(home)})


def answers(**sections: dict) -> Answers:
    return Answers(sections, "test answers")


def passes_soon(run_check, *, timeout: float, what: str) -> Check:
    """Poll a check until it passes (Prometheus scrapes every 15 s); fail with its last report."""
    verdicts: list[Check] = []

    def passed() -> bool:
        verdicts.append(run_check())
        return verdicts[-1].ok

    try:
        wait_until(passed, timeout=timeout, interval=2, what=what)
    except NotReady:
        pytest.fail(f"{what}: not passed after {timeout:.0f} s:\n{verdicts[-1].render()}")
    return verdicts[-1]


@pytest.fixture(scope="module")
def native_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """LAB_HOME of a running native stack (this LAB_INSTANCE's), taken down at the end."""
    assert netns.UP_NAME not in netns.existing(), "a native stack is already up on this machine: `lab down` first"
    home = tmp_path_factory.mktemp("labs")
    started = lab(home, "up")
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        yield home
    finally:
        lab(home, "federation", "down")
        lab(home, "down")
    assert netns.UP_NAME not in netns.existing()


@pytest.fixture(scope="module")
def live(native_home: Path) -> LiveStack:
    return LiveStack.native(NativeStack(native_home))


@pytest.fixture(scope="session")
def incident(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Incident]:
    """The report tests' synthetic incident: a real Prometheus serving backfilled incident data."""
    with backfilled_prometheus(tmp_path_factory.mktemp("labs-incident")) as served:
        yield served


@pytest.fixture(scope="session")
def incident_result(incident: Incident, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("labs-result") / "incident.json"
    path.write_text(json.dumps(incident.result))
    return path
