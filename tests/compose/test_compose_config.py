"""compose.yaml through the real Compose binary: secrets required, healthchecks, ports, images, mounts."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from signaling.config import load

REPO = Path(__file__).resolve().parents[2]
ENV_EXAMPLE = REPO / ".env.example"
PROFILES = ("default", "federation", "load")
DEFAULT_SERVICES = {
    "signaling", "node-exporter", "prometheus", "alertmanager-config", "alertmanager", "alert-sink", "grafana",
    *(f"sfu-node-0{i}{part}" for i in range(1, 5) for part in ("-pod", "", "-exporter")),
}
FEDERATION_SERVICES = {"prometheus-region-a", "prometheus-region-b", "prometheus-global"}
LOAD_SERVICES = {"locust-master", "locust-worker", "loadtest-bots"}
# What a person opens, and nothing else: (service, host port) -> container port.
PUBLISHED = {
    ("signaling", 8080): 8080, ("signaling", 8081): 8081, ("prometheus", 9090): 9090,
    ("alertmanager", 9093): 9093, ("grafana", 3000): 3000, ("prometheus-global", 9091): 9090,
    ("locust-master", 8089): 8089,
}
# Upstream images run the versions of the Debian binaries the tests run (lab.monitoring).
UPSTREAM_VERSIONS = {
    "prom/prometheus": (["prometheus", "--version"], "v2.42.0"),
    "prom/alertmanager": (["prometheus-alertmanager", "--version"], "v0.25.0"),
    "prom/node-exporter": (["prometheus-node-exporter", "--version"], "v1.5.0"),
}
# Absolute host paths Compose may bind (node_exporter reads the host, read-only, as in dockprom).
HOST_SYSTEM_PATHS = {"/proc", "/sys", "/"}
DOCKER_SOCKET = "/var/run/docker.sock"


def one_shot(services: dict[str, Any]) -> set[str]:
    """Services others wait for with service_completed_successfully."""
    return {name for svc in services.values() for name, dep in (svc.get("depends_on") or {}).items()
            if dep.get("condition") == "service_completed_successfully"}


@pytest.mark.parametrize("profile", PROFILES)
def test_with_env_example_as_it_is_compose_stops_and_names_every_missing_secret(profile, compose_runner, secrets):
    assert set(secrets) == {"SIGNALING_TOKEN_KEY", "SIGNALING_ADMIN_TOKEN", "JANUS_ADMIN_SECRET",
                            "GRAFANA_ADMIN_PASSWORD"}
    run = compose_runner("config", "-q", env_file=ENV_EXAMPLE, profiles=[profile])
    assert run.returncode != 0, "compose accepted .env.example with empty secrets"
    for name in secrets:
        assert f"required variable {name} is missing a value: set {name} in .env (see .env.example)" in run.stderr, (
            run.stderr)


@pytest.mark.parametrize("profile", PROFILES)
def test_with_the_secrets_filled_in_compose_accepts_the_file_without_a_warning(profile, compose_runner,
                                                                                filled_env_file):
    run = compose_runner("config", "-q", env_file=filled_env_file, profiles=[profile])
    assert run.returncode == 0, run.stderr
    assert run.stderr.strip() == "", run.stderr


@pytest.mark.parametrize("profile", PROFILES)
def test_each_profile_runs_the_services_of_the_issue(profile, compose_runner, filled_env_file):
    run = compose_runner("config", "--services", env_file=filled_env_file, profiles=[profile])
    assert run.returncode == 0, run.stderr
    expected = DEFAULT_SERVICES | {"federation": FEDERATION_SERVICES, "load": LOAD_SERVICES}.get(profile, set())
    assert set(run.stdout.split()) == expected


def test_compose_file_follows_the_compose_spec_without_a_version_key(raw_compose):
    assert "version" not in raw_compose
    assert set(raw_compose) - {"name", "services", "networks", "volumes"} == {
        key for key in raw_compose if key.startswith("x-")}


def test_every_long_running_service_has_an_explicit_healthcheck_and_one_shot_ones_and_pods_disable_it(services):
    once = one_shot(services)
    assert once == {"alertmanager-config"}
    for name, svc in services.items():
        check = svc.get("healthcheck")
        assert check, f"{name} has no healthcheck in compose.yaml"
        if name in once:
            assert check == {"disable": True}, name
            assert svc.get("restart") == "no", name
        elif name.endswith("-pod"):  # runs an init, shapes its link if asked, then sleeps: nothing to check
            assert check == {"disable": True}, name
            assert svc["entrypoint"] == ["/usr/local/bin/sfu-pod"] and svc["init"] is True, name
        else:
            assert check["test"][0] == "CMD" and len(check["test"]) > 1, (name, check)
            assert {"interval", "timeout", "retries"} <= set(check), (name, check)


def test_every_dependency_waits_for_health_or_for_successful_completion(services):
    for name, svc in services.items():
        for dependency, spec in (svc.get("depends_on") or {}).items():
            assert dependency in services, (name, dependency)
            unchecked = services[dependency]["healthcheck"] == {"disable": True}
            expected = ("service_started" if dependency.endswith("-pod")
                        else "service_completed_successfully" if unchecked else "service_healthy")
            assert spec.get("condition") == expected, (name, dependency, spec)


def test_the_start_order_is_nodes_then_exporters_then_signaling_and_monitoring_before_grafana(services):
    nodes = [f"sfu-node-0{i}" for i in range(1, 5)]
    assert set(services["signaling"]["depends_on"]) == {*nodes, *(f"{n}-exporter" for n in nodes)}
    for node in nodes:
        assert set(services[node]["depends_on"]) == set(services[f"{node}-exporter"]["depends_on"]) == {f"{node}-pod"}
    assert set(services["alertmanager"]["depends_on"]) == {"alertmanager-config", "alert-sink"}
    assert set(services["grafana"]["depends_on"]) == {"prometheus", "alertmanager"}
    assert set(services["prometheus-global"]["depends_on"]) == {"prometheus-region-a", "prometheus-region-b"}


def test_published_ports_are_exactly_what_a_person_opens_and_bound_to_127_0_0_1(services):
    published = {}
    for name, svc in services.items():
        for port in svc.get("ports") or []:
            assert port["host_ip"] == "127.0.0.1", (name, port)
            assert port.get("protocol", "tcp") == "tcp", (name, port)
            published[(name, int(port["published"]))] = int(port["target"])
    assert published == PUBLISHED


def test_janus_apis_exporters_and_the_sink_stay_internal(services):
    for name, svc in services.items():
        if name.startswith("sfu-node-") or name in ("alert-sink", "alertmanager-config", "node-exporter"):
            assert not svc.get("ports"), name
            assert not svc.get("expose"), name
    for i in range(1, 5):
        node = services[f"sfu-node-0{i}"]
        assert node["environment"]["JANUS_ADMIN_IP"] == "127.0.0.1"


def test_every_image_is_pinned_to_a_version_tag_or_built_from_a_dockerfile_here(services):
    for name, svc in services.items():
        image = svc["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and tag and tag != "latest" and "/" not in tag, (name, image)
        if "build" in svc:
            context = Path(svc["build"]["context"])
            dockerfile = context / svc["build"]["dockerfile"]
            assert context.parent == REPO / "services" or dockerfile == REPO / "loadtest" / "Dockerfile", name
            assert dockerfile.is_file(), name
            assert image.startswith("sfu-lab/") and tag == "local", (name, image)
        else:
            assert re.fullmatch(r"v?\d+\.\d+\.\d+", tag), (name, image)


@pytest.mark.parametrize("repository", sorted(UPSTREAM_VERSIONS))
def test_upstream_images_run_the_version_of_the_debian_binary_the_tests_run(repository, services):
    argv, tag = UPSTREAM_VERSIONS[repository]
    tags = {svc["image"].rpartition(":")[2] for svc in services.values() if svc["image"].startswith(repository + ":")}
    assert tags == {tag}
    run = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert re.search(rf"version {re.escape(tag.lstrip('v'))}[+ ]", run.stdout + run.stderr), run.stdout + run.stderr


def test_every_bind_mount_is_a_folder_of_this_repository_or_a_host_system_path_read_only(services):
    for name, svc in services.items():
        for volume in svc.get("volumes") or []:
            if volume["type"] == "volume":
                continue
            assert volume["type"] == "bind", (name, volume)
            source = Path(volume["source"])
            if str(source) in HOST_SYSTEM_PATHS:
                assert name == "node-exporter" and volume.get("read_only"), (name, volume)
                continue
            if str(source) == DOCKER_SOCKET:  # node-down acts on containers: said in compose.yaml
                assert name == "loadtest-bots" and volume["target"] == DOCKER_SOCKET, (name, volume)
                continue
            assert source.is_relative_to(REPO) and source.exists(), (name, volume)
            assert volume.get("read_only"), f"{name} mounts {source} writable"


def test_named_volumes_hold_prometheus_alertmanager_and_grafana_data_on_one_lab_network(compose_model, services):
    assert set(compose_model["volumes"]) == {"prometheus-data", "alertmanager-data", "alertmanager-config",
                                             "grafana-data", "scenario-results"}
    assert set(compose_model["networks"]) == {"lab"}
    mounts = {(name, v["source"]): v["target"] for name, svc in services.items()
              for v in svc.get("volumes") or [] if v["type"] == "volume"}
    assert mounts == {
        ("prometheus", "prometheus-data"): "/prometheus",
        ("loadtest-bots", "scenario-results"): "/results",
        ("alertmanager", "alertmanager-data"): "/alertmanager",
        ("alertmanager-config", "alertmanager-config"): "/config",
        ("alertmanager", "alertmanager-config"): "/etc/alertmanager",
        ("grafana", "grafana-data"): "/var/lib/grafana",
    }
    for name, svc in services.items():
        if "network_mode" not in svc:
            assert set(svc["networks"]) == {"lab"}, name


def test_secrets_have_no_default_anywhere_in_compose_yaml(secrets, raw_compose):
    text = (REPO / "compose.yaml").read_text()
    for name in secrets:
        uses = re.findall(r"\$\{" + name + r"([^}]*)\}", text)
        assert uses, f"{name} is not used"
        for use in uses:
            assert use == f":?set {name} in .env (see .env.example)", f"${{{name}{use}}} gives it a default"
    # Any variable set to a secret's value is set from that required variable, never to a literal.
    secret_refs = {f"${{{name}:?set {name} in .env (see .env.example)}}" for name in secrets}
    for name, svc in raw_compose["services"].items():
        for key, value in (svc.get("environment") or {}).items():
            if any(word in key for word in ("SECRET", "TOKEN", "PASSWORD", "KEY", "WEBHOOK")):
                assert value in secret_refs or re.fullmatch(r"\$\{[A-Z_]+:-\}", str(value)), (name, key, value)


def test_janus_and_its_exporter_share_their_pods_namespaces_secret_and_stats_period(services):
    for i in range(1, 5):
        node_name = f"sfu-node-0{i}"
        pod, node, exporter = services[f"{node_name}-pod"], services[node_name], services[f"{node_name}-exporter"]
        assert pod["hostname"] == node_name and pod["networks"] == {"lab": {"aliases": [node_name]}}
        for member in (node, exporter):
            assert member["network_mode"] == member["pid"] == f"service:{node_name}-pod"
            assert "networks" not in member and not member.get("ports")
        node_env, exporter_env = node["environment"], exporter["environment"]
        assert node_env["JANUS_NODE_NAME"] == node_name
        assert "JANUS_INTERFACE" not in node_env, "the entrypoint finds the container's address at run time"
        assert node_env["JANUS_ADMIN_SECRET"] == exporter_env["JANUS_ADMIN_SECRET"]
        assert node_env["JANUS_STATS_PERIOD"] == exporter_env["JANUS_STATS_PERIOD"] == "5"
        assert node_env["JANUS_EVENTS_ENABLED"] == "true"
        assert node_env["JANUS_EVENTS_BACKEND"] == "http://127.0.0.1:9188/events"
        assert exporter_env["JANUS_EXPORTER_ADMIN_URL"] == "http://127.0.0.1:7088/admin"
        assert float(node["cpus"]) == float(exporter_env["JANUS_EXPORTER_CPU_BUDGET_CORES"]) == 1.0


def test_only_the_pods_get_a_capability_net_admin_for_their_own_link_and_unshaped_unless_asked(services):
    granted = {name: svc["cap_add"] for name, svc in services.items() if svc.get("cap_add")}
    assert granted == {f"sfu-node-0{i}-pod": ["NET_ADMIN"] for i in range(1, 5)}
    assert not any(svc.get("privileged") for svc in services.values())
    for i in range(1, 5):
        pod = services[f"sfu-node-0{i}-pod"]
        assert pod["user"] == "0", "tc needs root; pod.sh drops it (setpriv) before it sleeps"
        assert pod["environment"] == {"SFU_NODE_LINK_KBIT": ""}, "unset: the node's link is not shaped"


def test_sfu_node_link_kbit_reaches_every_pod(compose_runner, env_file_with):
    run = compose_runner("config", "--format", "json", env_file=env_file_with(SFU_NODE_LINK_KBIT="5800"))
    assert run.returncode == 0, run.stderr
    services = json.loads(run.stdout)["services"]
    assert {services[f"sfu-node-0{i}-pod"]["environment"]["SFU_NODE_LINK_KBIT"] for i in range(1, 5)} == {"5800"}


def test_sfu_node_cpus_sets_each_nodes_cpu_limit_and_its_exporters_cpu_budget(compose_runner, env_file_with):
    run = compose_runner("config", "--format", "json", env_file=env_file_with(SFU_NODE_CPUS="2.5",
                                                                              JANUS_STATS_PERIOD="1"))
    assert run.returncode == 0, run.stderr
    services = json.loads(run.stdout)["services"]
    for i in range(1, 5):
        node, exporter = services[f"sfu-node-0{i}"], services[f"sfu-node-0{i}-exporter"]
        assert node["cpus"] == 2.5
        assert exporter["environment"]["JANUS_EXPORTER_CPU_BUDGET_CORES"] == "2.5"
        assert node["environment"]["JANUS_STATS_PERIOD"] == exporter["environment"]["JANUS_STATS_PERIOD"] == "1"


def test_signaling_accepts_its_compose_environment_and_knows_every_node_and_exporter(services):
    config = load(services["signaling"]["environment"])
    assert list(config.sfu_nodes) == [f"sfu-node-0{i}" for i in range(1, 5)]
    assert set(config.sfu_exporters) == set(config.sfu_nodes)
    assert (config.placement_policy, config.region, config.port, config.admin_port) == (
        "least_participants", "local", 8080, 8081)


def test_grafana_mounts_dashboards_where_its_provisioning_looks_and_reads_the_password_from_env(services):
    grafana = services["grafana"]
    provider = yaml.safe_load((REPO / "grafana/provisioning/dashboards/dashboards.yml").read_text())["providers"][0]
    binds = {v["target"]: Path(v["source"]) for v in grafana["volumes"] if v["type"] == "bind"}
    assert binds[provider["options"]["path"]] == REPO / "grafana" / "dashboards"
    assert binds["/etc/grafana/provisioning"] == REPO / "grafana" / "provisioning"
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"].startswith("test-grafana_admin_password")


def test_prometheus_runs_the_committed_folder_and_its_compose_target_set(services):
    for name in ("prometheus", "prometheus-region-a", "prometheus-region-b", "prometheus-global"):
        svc = services[name]
        binds = {v["target"]: Path(v["source"]) for v in svc["volumes"] if v["type"] == "bind"}
        assert binds == {"/etc/prometheus": REPO / "prometheus"}, name
        (config_arg,) = [a for a in svc["command"] if a.startswith("--config.file=")]
        config = Path(config_arg.split("=", 1)[1])
        assert (REPO / "prometheus" / config.relative_to("/etc/prometheus")).is_file(), name
        assert "--storage.tsdb.path=/prometheus" in svc["command"], name
    assert "--web.enable-lifecycle" in services["prometheus"]["command"]
    assert (REPO / "prometheus/targets/active").readlink() == Path("compose")


def container_to_host(svc: dict[str, Any], path: str, volumes: dict[str, Path]) -> str:
    """Where a container path of ``svc`` lives on the host (bind source, or a folder standing in for a volume)."""
    for mount in sorted(svc.get("volumes") or [], key=lambda v: -len(v["target"])):
        if path == mount["target"] or path.startswith(mount["target"] + "/"):
            base = Path(mount["source"]) if mount["type"] == "bind" else volumes[mount["source"]]
            return str(base / Path(path).relative_to(mount["target"]))
    raise AssertionError(f"{path} is on no mount of the service")


def test_the_alertmanager_init_command_renders_a_config_alertmanager_finds_with_its_secrets(services, tmp_path):
    init, alertmanager = services["alertmanager-config"], services["alertmanager"]
    assert init["user"] == "65534:65534" and init["network_mode"] == "none"
    volumes = {"alertmanager-config": tmp_path / "volume"}
    command = init["command"]
    assert command[:3] == ["python", "-m", "alert_sink.amconfig"]
    args = dict(arg.split("=", 1) for arg in command[3:])
    host_args = [f"--out={container_to_host(init, args['--out'], volumes)}",
                 f"--source={container_to_host(init, args['--source'], volumes)}",
                 f"--secrets-dir-seen-as={args['--secrets-dir-seen-as']}"]
    env = {**init["environment"], "ALERTMANAGER_SLACK_WEBHOOK_URL": "https://hooks.slack.invalid/T0/B0/x"}
    run = subprocess.run([sys.executable, "-m", "alert_sink.amconfig", *host_args], capture_output=True, text=True,
                         timeout=30, env={"PATH": "/usr/bin:/bin", **env})
    assert run.returncode == 0, run.stderr
    # Alertmanager's --config.file is the rendered file, in the same volume.
    (config_arg,) = [a for a in alertmanager["command"] if a.startswith("--config.file=")]
    rendered = Path(container_to_host(alertmanager, config_arg.split("=", 1)[1], volumes))
    assert rendered == Path(run.stdout.strip())
    document = yaml.safe_load(rendered.read_text())
    slack_files = {c["api_url_file"] for r in document["receivers"] for c in r.get("slack_configs", [])}
    assert slack_files == {f"{args['--secrets-dir-seen-as']}/slack_webhook_url"}
    assert Path(container_to_host(alertmanager, slack_files.pop(), volumes)).read_text() == env[
        "ALERTMANAGER_SLACK_WEBHOOK_URL"]
    assert not any("pagerduty_configs" in r for r in document["receivers"]), "PagerDuty is off unless set"
    assert [m["read_only"] for m in alertmanager["volumes"] if m["source"] == "alertmanager-config"] == [True]


def test_every_variable_compose_reads_is_documented_in_env_example():
    code = "\n".join(line.split(" #", 1)[0] for line in (REPO / "compose.yaml").read_text().splitlines()
                     if not line.lstrip().startswith("#"))
    used = set(re.findall(r"(?<!\$)\$\{([A-Z][A-Z0-9_]*)", code))
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), flags=re.MULTILINE))
    assert used and used <= documented, f"not in .env.example: {sorted(used - documented)}"
