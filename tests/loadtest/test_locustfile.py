"""loadtest/locustfile.py: its helpers, and a real headless Locust run against a real stack.

Locust patches the process with gevent when imported, so the run is a separate ``locust``
process against the signaling service as a subprocess (``lab.stack.Stack``); the helpers are
imported here with the patching turned off.
"""

from __future__ import annotations

import csv
import importlib.util
import os
import resource
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import ModuleType
from unittest import mock

import pytest
from prometheus_client.parser import text_string_to_metric_families

from lab.stack import Stack
from sfu_stack.readiness import wait_until
from signaling.tokens import TokenRejected, verify

pytestmark = pytest.mark.janus

ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILE = ROOT / "loadtest" / "locustfile.py"
KEY = "k" * 40
STAGES = "4:20:10,8:20:10,3:0:20"  # ramp up, hold, ramp down: 15 s
LOCUST_TIMEOUT = 45


@pytest.fixture(scope="module")
def locustfile() -> ModuleType:
    with mock.patch.dict(os.environ, {"LOCUST_SKIP_MONKEY_PATCH": "1"}):
        spec = importlib.util.spec_from_file_location("locustfile_under_test", LOCUSTFILE)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up while it executes
        spec.loader.exec_module(module)
    return module


def locust_env(**settings: str) -> dict[str, str]:
    """The environment without the caller's LOCUST_* settings, plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCUST_") and k != "SIGNALING_TOKEN_KEY"}
    return {**env, **settings}


# ---- helpers -------------------------------------------------------------------------------------------
def test_stage_table_is_parsed_and_the_shape_ends_after_the_last_stage(locustfile):
    stages = locustfile.parse_stages("10:5:2, 30:20:5,5:0:10")
    assert [(s.duration, s.users, s.spawn_rate) for s in stages] == [(10, 5, 2), (30, 20, 5), (5, 0, 10)]
    at = [locustfile.stage_at(stages, t) for t in (0, 9.9, 10, 39.9, 40, 44.9, 45, 100)]
    assert [s.users if s else None for s in at] == [5, 5, 20, 20, 0, 0, None, None]
    for bad in ("", "10:5", "10:five:2", "0:5:1", "10:-1:1", "10:5:0"):
        with pytest.raises(locustfile.SettingsError):
            locustfile.parse_stages(bad)
    default = locustfile.parse_stages(locustfile.DEFAULT_STAGES)
    assert default[-1].users == 0 and locustfile.slow_ramps(default) == []
    assert locustfile.slow_ramps(locustfile.parse_stages("10:50:1,5:0:100")) == [
        "stage 1 ramps 0->50 users in 50 s, longer than its 10 s"]


@pytest.mark.parametrize("reason", ["expired", "bad_signature", "malformed", "wrong_room", "missing"])
def test_each_bad_token_is_refused_by_the_service_check_with_its_reason(locustfile, reason):
    token = locustfile.bad_token(reason, KEY, "load-3", "u1", 600)
    with pytest.raises(TokenRejected) as refused:
        verify(KEY, token, room="load-3")
    assert refused.value.reason == reason


def test_host_becomes_the_signaling_url(locustfile):
    url = locustfile.signaling_url
    assert url("ws://127.0.0.1:8080") == "ws://127.0.0.1:8080/ws/signaling"
    assert url("ws://127.0.0.1:8080/") == "ws://127.0.0.1:8080/ws/signaling"
    assert url("http://198.18.125.2:8080") == "ws://198.18.125.2:8080/ws/signaling"
    assert url("https://sig.example") == "wss://sig.example/ws/signaling"
    assert url("ws://h:1/custom/path") == "ws://h:1/custom/path"
    for bad in (None, "", "127.0.0.1:8080", "ftp://h"):
        with pytest.raises(locustfile.SettingsError):
            url(bad)


def test_settings_need_the_token_key_and_check_their_values(locustfile):
    defaults = {name: default for name, (_, default, _) in locustfile.OPTIONS.items()}
    with pytest.raises(locustfile.SettingsError, match="SIGNALING_TOKEN_KEY is not set"):
        locustfile.Settings.load(defaults, {})
    with pytest.raises(locustfile.SettingsError, match="shorter than 32"):
        locustfile.Settings.load(defaults, {"SIGNALING_TOKEN_KEY": "short"})
    settings = locustfile.Settings.load(defaults, {"SIGNALING_TOKEN_KEY": KEY})
    assert settings.rooms[0] == "load-0" and len(settings.rooms) == 50
    for name, value in (("rooms", "0"), ("bad_token_share", "1.5"), ("bad_token_reasons", "nope"),
                        ("pings_min", "9"), ("wait_max", "x")):
        with pytest.raises(locustfile.SettingsError):
            locustfile.Settings.load({**defaults, name: value}, {"SIGNALING_TOKEN_KEY": KEY})


def test_locust_refuses_to_start_without_the_token_key():
    result = subprocess.run([sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
                             "--host", "ws://127.0.0.1:9"], env=locust_env(), capture_output=True, text=True,
                            timeout=30, cwd=ROOT)
    assert result.returncode != 0
    assert "SIGNALING_TOKEN_KEY is not set" in result.stderr


# ---- a real run ----------------------------------------------------------------------------------------
def metric_samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def total(samples: dict, name: str, **labels: str) -> float:
    return sum(v for (n, lbl), v in samples.items() if n == name and set(labels.items()) <= set(lbl))


@pytest.fixture
def stack(tmp_path: Path):
    lab = Stack(tmp_path / "stack", node_count=1)
    lab.start()
    try:
        yield lab
    finally:
        lab.stop()


def test_headless_run_churns_joins_and_bad_tokens_without_unexpected_failures(stack, tmp_path):
    before = metric_samples(stack.http_url)
    env = locust_env(SIGNALING_TOKEN_KEY=stack.token_key, LOCUST_STAGES=STAGES, LOCUST_BAD_TOKEN_SHARE="0.2",
                     LOCUST_ROOMS="10", LOCUST_WAIT_MIN="0.1", LOCUST_WAIT_MAX="0.5")
    host = stack.http_url.replace("http://", "ws://")  # the locustfile adds /ws/signaling
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", host,
         "--csv", str(tmp_path / "locust"), "--html", str(tmp_path / "locust.html"), "--only-summary"],
        env=env, capture_output=True, text=True, timeout=LOCUST_TIMEOUT, cwd=ROOT)
    elapsed = time.monotonic() - started
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]  # any failure (exit code on error 1) or crash
    assert "Shape test completed" in output

    with open(tmp_path / "locust_stats.csv", newline="") as stats_file:
        rows = {row["Name"]: row for row in csv.DictReader(stats_file)}
    for name in ("connect", "join", "ping", "leave", "join (bad token)"):
        assert int(rows[name]["Request Count"]) > 0, name
    assert {name: int(row["Failure Count"]) for name, row in rows.items() if int(row["Failure Count"])} == {}
    with open(tmp_path / "locust_failures.csv", newline="") as failures_file:
        assert list(csv.DictReader(failures_file)) == []
    assert (tmp_path / "locust.html").stat().st_size > 0

    after = metric_samples(stack.http_url)
    refused = {reason: total(after, "signaling_auth_failures_total", reason=reason)
               - total(before, "signaling_auth_failures_total", reason=reason)
               for reason in ("expired", "bad_signature", "malformed", "wrong_room")}
    assert all(count > 0 for count in refused.values()), refused
    # a user stopped during a request is not in Locust's counts, though the service saw its message
    assert sum(refused.values()) >= int(rows["join (bad token)"]["Request Count"])
    joins_in = total(after, "signaling_messages_total", msg_type="join", direction="in")
    assert joins_in > 0
    assert joins_in >= int(rows["join"]["Request Count"]) + int(rows["join (bad token)"]["Request Count"])

    # every user closed its WebSocket on the way out: nobody is left joined
    def drained() -> bool:
        now = metric_samples(stack.http_url)
        return (total(now, "signaling_websockets_active") == 0
                and total(now, "signaling_participants_active") == 0)

    wait_until(drained, timeout=10, what="no WebSocket or participant left after Locust exited")

    aggregated = rows["Aggregated"]
    cpu = (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime)
    print(f"\nlocust: {aggregated['Request Count']} requests, {float(aggregated['Requests/s']):.1f} req/s, "
          f"0 failures, {refused} refused by reason, {cpu:.1f} s CPU in {elapsed:.1f} s wall "
          f"({100 * cpu / elapsed:.0f}% of a core)")
