"""The Compose backend of ``StackControl``: the Compose stack's SFU nodes, through the Docker SDK.

Containers are found by their Compose labels (``com.docker.compose.project`` and
``com.docker.compose.service``), never by guessed names. The project is the one the calling
container belongs to (``loadtest-bots`` in the ``load`` profile finds itself by its hostname, which
Docker sets to its container id), or the one named by ``COMPOSE_PROJECT_NAME``, or compose.yaml's
``name:``. Needs the Docker socket: compose.yaml mounts it into ``loadtest-bots`` only, and says why.

Janus is its container's main process (the entrypoint execs it), so a signal to the container is a
signal to Janus; the node's exporter lives on in the node's pod. A killed container stays down
(Docker does not apply ``restart: unless-stopped`` to a container killed through its API) until
``restart_node``. CPU limits are the container's CFS quota (``cpus:``); CPU time is the container's
cgroup usage (``docker stats``), where the quota is enforced.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sfu_stack import topology
from sfu_stack.control import Endpoints
from sfu_stack.readiness import NotReady, wait_until

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
DEFAULT_PROJECT = "sfu-observability-lab"  # compose.yaml's name:


class ComposeError(RuntimeError):
    """The Compose stack, or one of its containers, is not where it should be."""


def own_project(client: Any) -> str | None:
    """The Compose project of the container this process runs in (None: not in one of ours)."""
    try:
        me = client.containers.get(socket.gethostname())
    except Exception:  # noqa: BLE001 - docker.errors.NotFound, or not a container at all
        return None
    return me.labels.get(PROJECT_LABEL)


def _known(node: str) -> str:
    if node not in topology.NODE_NAMES:
        raise ComposeError(f"unknown SFU node {node!r}; known: {', '.join(topology.NODE_NAMES)}")
    return node


class ComposeControl:
    """SFU nodes of one Compose project: ``ComposeControl.from_env()`` finds the socket and project."""

    runner = "compose"

    def __init__(self, client: Any, project: str, env: Mapping[str, str] = os.environ) -> None:
        self.client, self.project, self.env = client, project, env

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> ComposeControl:
        import docker  # the Docker SDK for Python; only this backend needs it

        try:
            client = docker.from_env()
            client.ping()
        except Exception as exc:  # noqa: BLE001 - docker.errors.DockerException and socket errors
            raise ComposeError(f"no Docker Engine reachable ({exc}): the load profile mounts "
                               "/var/run/docker.sock into loadtest-bots") from exc
        project = own_project(client) or env.get("COMPOSE_PROJECT_NAME") or DEFAULT_PROJECT
        return cls(client, project, env)

    # ---- finding containers ----------------------------------------------------------------------
    def container(self, service: str) -> Any:
        found = self.client.containers.list(all=True, filters={
            "label": [f"{PROJECT_LABEL}={self.project}", f"{SERVICE_LABEL}={service}"]})
        if not found:
            raise ComposeError(f"no container of service {service} in Compose project {self.project}")
        return found[0]

    def _janus(self, node: str) -> Any:
        return self.container(_known(node))

    # ---- StackControl ----------------------------------------------------------------------------
    def nodes(self) -> tuple[str, ...]:
        return topology.NODE_NAMES

    def endpoints(self) -> Endpoints:
        """Where the services answer from inside the project's network (the bots' container)."""
        env = self.env
        return Endpoints(
            signaling_ws=env.get("LOAD_SIGNALING_WS", f"ws://signaling:{topology.SIGNALING_PORT}/ws/signaling"),
            signaling_admin=env.get("LOAD_SIGNALING_ADMIN", f"http://signaling:{topology.SIGNALING_ADMIN_PORT}"),
            admin_token=env["SIGNALING_ADMIN_TOKEN"], token_key=env["SIGNALING_TOKEN_KEY"],
            prometheus=env.get("LOAD_PROMETHEUS", f"http://prometheus:{topology.PROMETHEUS_PORT}"),
            alert_sink=env.get("LOAD_ALERT_SINK", f"http://alert-sink:{topology.ALERT_SINK_PORT}"),
            alertmanager=f"http://alertmanager:{topology.ALERTMANAGER_PORT}",
            exporters={n: f"http://{n}:{topology.EXPORTER_PORT}/metrics" for n in topology.NODE_NAMES},
            bots_metrics=("0.0.0.0", topology.BOTS_METRICS_PORT),
            timeout_scale=float(env.get("LOAD_TIMEOUT_SCALE", "4")),
        )

    def kill_node(self, node: str) -> None:
        self._janus(node).kill(signal="SIGKILL")

    def stop_node(self, node: str) -> None:
        self._janus(node).kill(signal="SIGSTOP")

    def continue_node(self, node: str) -> None:
        self._janus(node).kill(signal="SIGCONT")

    def restart_node(self, node: str, timeout: float = 60) -> None:
        container = self._janus(node)
        container.start()

        def healthy() -> bool:
            container.reload()
            return container.attrs["State"].get("Health", {}).get("Status") == "healthy"

        try:
            wait_until(healthy, timeout=timeout, what=f"{node} healthy again", interval=0.5)
        except NotReady as exc:
            raise ComposeError(f"{node} did not become healthy within {timeout:.0f} s of its restart") from exc

    def cpu_limit(self, node: str) -> float | None:
        host = self._janus(node).attrs["HostConfig"]
        if host.get("NanoCpus"):
            return host["NanoCpus"] / 1e9
        if host.get("CpuQuota", 0) > 0 and host.get("CpuPeriod"):
            return host["CpuQuota"] / host["CpuPeriod"]
        return None

    def set_cpu_limit(self, node: str, cores: float) -> None:
        # `cpus:` is NanoCpus, which the update API cannot change into a quota while set: clear it
        # the way `docker update --cpus` does, by setting NanoCpus itself.
        api = self.client.api
        reply = api._post_json(api._url("/containers/{0}/update", self._janus(node).id),
                               data={"NanoCpus": int(cores * 1e9)})
        api._raise_for_status(reply)

    def janus_cpu_seconds(self, node: str) -> float:
        return self.janus_cpu_sample(node)[1]

    def janus_cpu_sample(self, node: str) -> tuple[float, float]:
        """(when the engine read it, as a Unix time; the container's CPU seconds): rates taken from
        the engine's own read times do not carry the API call's latency."""
        stats = self._janus(node).stats(stream=False, one_shot=True)
        read = stats["read"]  # RFC 3339 with nanoseconds: 2026-12-02T01:47:18.123456789Z
        whole, _, fraction = read.rstrip("Z").partition(".")
        when = datetime.fromisoformat(whole).replace(tzinfo=UTC).timestamp() + float(f"0.{fraction or 0}")
        return when, float(stats["cpu_stats"]["cpu_usage"]["total_usage"]) / 1e9

    def link_kbit(self, node: str) -> int | None:
        """What the node's pod shaped its ``eth0`` to (``SFU_NODE_LINK_KBIT`` in its environment;
        the pod exits at start if ``tc`` refuses it, so a running pod has it)."""
        pod = self.container(topology.pod_service(_known(node)))
        env = dict(item.partition("=")[::2] for item in pod.attrs["Config"]["Env"] or [])
        return int(env["SFU_NODE_LINK_KBIT"]) if env.get("SFU_NODE_LINK_KBIT", "").strip() else None

    def start_hint(self, node_cpus: float, link_kbit: int | None = None) -> str:
        settings = f"SFU_NODE_CPUS={node_cpus:g}" + (f" and SFU_NODE_LINK_KBIT={link_kbit}" if link_kbit else "")
        return (f"set {settings} in .env, then docker compose up -d --wait and run the "
                "scenario again (the exporters' CPU budget follows it; a value given to `up` alone is undone "
                "by the next `run`, which brings the nodes back in line with .env)")
