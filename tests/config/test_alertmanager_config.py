"""alertmanager/alertmanager.yml: amtool's checks, the route tree, grouping, inhibition, and its rendering."""

from __future__ import annotations

import re
import stat
import subprocess

import pytest
import yaml
from promql_names import all_rules

from alert_sink.amconfig import ALERTMANAGER_YML, main, render_alertmanager, render_from_env

ALERT_NAMES = {rule["alert"] for rule in all_rules() if "alert" in rule}
SEVERITY_OF = {rule["alert"]: rule["labels"]["severity"] for rule in all_rules() if "alert" in rule}


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["amtool", *args], capture_output=True, text=True, timeout=60)


def config() -> dict:
    return yaml.safe_load(ALERTMANAGER_YML.read_text())


def routes_test(config_file, receiver: str, *labels: str) -> subprocess.CompletedProcess[str]:
    return amtool("config", "routes", "test", f"--config.file={config_file}", f"--verify.receivers={receiver}",
                  *labels)


def test_amtool_check_config_accepts_the_committed_file():
    run = amtool("check-config", str(ALERTMANAGER_YML))
    assert run.returncode == 0 and "SUCCESS" in run.stdout, run.stdout + run.stderr


@pytest.mark.parametrize(("labels", "receiver"), [
    (["alertname=SFUHighCPU", "severity=critical", "instance=sfu-node-04"], "critical"),
    (["alertname=JanusDown", "severity=critical", "instance=sfu-node-02"], "critical"),
    (["alertname=SFUNackStorm", "severity=warning", "instance=sfu-node-01"], "warning"),
    (["alertname=TargetDown", "severity=warning", "job=signaling_backend"], "warning"),
    (["alertname=Watchdog"], "sink"),
    (["alertname=Something", "severity=info"], "sink"),
])
def test_amtool_routes_each_severity_to_its_receiver_and_the_rest_to_the_sink(labels, receiver):
    run = routes_test(ALERTMANAGER_YML, receiver, *labels)
    assert run.returncode == 0, run.stdout + run.stderr


def test_every_alert_of_the_rules_routes_to_the_receiver_of_its_severity():
    for name, severity in sorted(SEVERITY_OF.items()):
        run = routes_test(ALERTMANAGER_YML, severity, f"alertname={name}", f"severity={severity}")
        assert run.returncode == 0, f"{name}: {run.stdout}{run.stderr}"


def test_notifications_group_by_alert_and_severity_never_by_node_so_50_nodes_make_one_notification():
    route = config()["route"]
    for node in [route, *route["routes"]]:
        group_by = node.get("group_by", route["group_by"])
        assert {"alertname", "severity"} <= set(group_by)
        assert not {"instance", "node", "job"} & set(group_by)


def test_a_down_janus_inhibits_its_own_nodes_cpu_and_silent_failure_alerts_and_inhibitions_name_real_alerts():
    rules = config()["inhibit_rules"]
    janus = next(r for r in rules if r["source_matchers"] == ['alertname="JanusDown"'])
    assert "instance" in janus["equal"]
    (target,) = janus["target_matchers"]
    pattern = re.fullmatch(r'alertname=~"(.*)"', target).group(1)
    assert {"SFUHighCPU", "SFUSilentFailure"} <= set(pattern.split("|"))
    for rule in rules:
        for matcher in rule["source_matchers"] + rule["target_matchers"]:
            match = re.fullmatch(r'alertname=~?"(.*)"', matcher)
            if match:
                assert set(match.group(1).split("|")) <= ALERT_NAMES, matcher


def test_rendered_without_secrets_slack_and_pagerduty_are_off_and_the_sink_url_is_the_one_given(tmp_path):
    path = render_alertmanager(tmp_path, sink_url="http://127.0.0.1:19099/alerts")
    run = amtool("check-config", str(path))
    assert run.returncode == 0, run.stdout + run.stderr
    document = yaml.safe_load(path.read_text())
    for receiver in document["receivers"]:
        assert set(receiver) == {"name", "webhook_configs"}, receiver["name"]
        assert [c["url"] for c in receiver["webhook_configs"]] == ["http://127.0.0.1:19099/alerts"]
    assert not (tmp_path / "secrets").exists()


def test_rendered_with_secrets_they_go_to_0600_files_never_into_the_config(tmp_path):
    env = {"ALERTMANAGER_SLACK_WEBHOOK_URL": "https://hooks.slack.example/services/T000/B000/secret-slack-value",
           "ALERTMANAGER_PAGERDUTY_ROUTING_KEY": "secret-pagerduty-routing-key",
           "ALERT_SINK_URL": "http://127.0.0.1:19099/alerts"}
    path = render_from_env(tmp_path, env)
    text = path.read_text()
    assert "secret-slack-value" not in text and "secret-pagerduty-routing-key" not in text
    run = amtool("check-config", str(path))
    assert run.returncode == 0, run.stdout + run.stderr
    receivers = {r["name"]: r for r in yaml.safe_load(text)["receivers"]}
    assert set(receivers["critical"]) == {"name", "webhook_configs", "pagerduty_configs", "slack_configs"}
    assert set(receivers["warning"]) == {"name", "webhook_configs", "slack_configs"}
    slack_file = receivers["critical"]["slack_configs"][0]["api_url_file"]
    pagerduty_file = receivers["critical"]["pagerduty_configs"][0]["routing_key_file"]
    for file_name, value in ((slack_file, env["ALERTMANAGER_SLACK_WEBHOOK_URL"]),
                             (pagerduty_file, env["ALERTMANAGER_PAGERDUTY_ROUTING_KEY"])):
        secret = tmp_path / "secrets" / file_name.rsplit("/", 1)[1]
        assert str(secret) == file_name
        assert secret.read_text() == value
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert routes_test(path, "critical", "alertname=JanusDown", "severity=critical").returncode == 0
    # Unset again: the integrations and their secret files are gone.
    render_from_env(tmp_path, {})
    assert not list((tmp_path / "secrets").iterdir())
    assert "slack_configs" not in path.read_text()


def test_render_can_name_the_secrets_folder_as_a_container_sees_it_and_shorten_timings(tmp_path):
    path = render_alertmanager(tmp_path, pagerduty_routing_key="k", secrets_dir_seen_as="/etc/alertmanager/secrets",
                               timings={"group_wait": "1s"})
    document = yaml.safe_load(path.read_text())
    critical = next(r for r in document["receivers"] if r["name"] == "critical")
    assert critical["pagerduty_configs"][0]["routing_key_file"] == "/etc/alertmanager/secrets/pagerduty_routing_key"
    assert document["route"]["group_wait"] == "1s"
    with pytest.raises(ValueError, match="unknown timings"):
        render_alertmanager(tmp_path, timings={"group_by": "x"})


def test_the_cli_renders_from_the_environment(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("ALERTMANAGER_SLACK_WEBHOOK_URL", raising=False)
    monkeypatch.delenv("ALERTMANAGER_PAGERDUTY_ROUTING_KEY", raising=False)
    monkeypatch.setenv("ALERT_SINK_URL", "http://127.0.0.1:29099/alerts")
    assert main(["--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "alertmanager.yml")
    assert "http://127.0.0.1:29099/alerts" in (tmp_path / "alertmanager.yml").read_text()
