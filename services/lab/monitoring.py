"""The monitoring programs of the lab as components: Prometheus, Alertmanager, node_exporter, alert sink.

Each runs Debian's binary (or our ``alert_sink``) with the configuration files the Compose stack
mounts, rendered for the native target set by ``lab.rule_overrides`` and ``alert_sink.amconfig``.
A missing binary raises ``MissingPrerequisite`` naming the ``make`` target that installs it.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lab.components import Component, python_module
from lab.netns import NetNamespace
from sfu_stack.prom import get_json, query
from sfu_stack.readiness import http_status

BINARIES = {
    "prometheus": ("prometheus",),
    "alertmanager": ("prometheus-alertmanager", "alertmanager"),
    "node_exporter": ("prometheus-node-exporter", "node_exporter"),
}


class MissingPrerequisite(RuntimeError):
    """A program the lab needs is not installed; the message names the make target."""


def binary(program: str) -> str:
    for name in BINARIES[program]:
        path = shutil.which(name)
        if path:
            return path
    raise MissingPrerequisite(f"{program} is not installed ({' or '.join(BINARIES[program])} not on PATH): "
                              "run `make deps` (it installs Debian's prometheus, prometheus-alertmanager and "
                              "prometheus-node-exporter)")


class HttpComponent(Component):
    """A component that is ready when ``ready_path`` answers 200 on ``host:port``.

    ``host`` is where this process reaches it; ``listen`` (default: ``host``) is what it binds,
    e.g. 0.0.0.0 inside the native stack's namespace, reached from outside on the namespace address.
    """

    ready_path = "/-/ready"

    def __init__(self, name: str, argv: Sequence[str], workdir: Path, *, host: str, port: int,
                 env: Mapping[str, str] | None = None, netns: NetNamespace | None = None) -> None:
        self.host, self.port = host, port
        super().__init__(name=name, argv=argv, workdir=workdir, env=dict(env or {}), netns=netns)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start_and_wait(self, timeout: float = 30.0) -> None:
        self.start()
        self.wait_ready(lambda: http_status(self.url + self.ready_path) == 200, timeout=timeout)

    def get_json(self, path: str, **params: str) -> Any:
        return get_json(self.url + path, **params)


class Prometheus(HttpComponent):
    """Prometheus from a folder laid out by ``lab.rule_overrides.render_prometheus``."""

    def __init__(self, config: Path, workdir: Path, *, host: str = "127.0.0.1", port: int = 9090,
                 listen: str | None = None, netns: NetNamespace | None = None, retention: str = "1d") -> None:
        argv = [binary("prometheus"), f"--config.file={config}", f"--storage.tsdb.path={workdir / 'prometheus-data'}",
                f"--storage.tsdb.retention.time={retention}", f"--web.listen-address={listen or host}:{port}",
                "--web.enable-lifecycle", "--log.level=warn"]
        super().__init__("prometheus", argv, workdir, host=host, port=port, netns=netns)

    def query(self, promql: str) -> list[dict[str, Any]]:
        return query(self.url, promql)

    def targets(self) -> list[dict[str, Any]]:
        return list(self.get_json("/api/v1/targets")["data"]["activeTargets"])

    def alerts(self) -> list[dict[str, Any]]:
        return list(self.get_json("/api/v1/alerts")["data"]["alerts"])


class Alertmanager(HttpComponent):
    """Alertmanager from a file rendered by ``alert_sink.amconfig`` (no clustering)."""

    def __init__(self, config: Path, workdir: Path, *, host: str = "127.0.0.1", port: int = 9093,
                 listen: str | None = None, netns: NetNamespace | None = None) -> None:
        argv = [binary("alertmanager"), f"--config.file={config}",
                f"--storage.path={workdir / 'alertmanager-data'}", f"--web.listen-address={listen or host}:{port}",
                "--cluster.listen-address=", "--log.level=warn"]
        super().__init__("alertmanager", argv, workdir, host=host, port=port, netns=netns)


class NodeExporter(HttpComponent):
    """Debian's node_exporter (host CPU, memory, network)."""

    ready_path = "/metrics"

    def __init__(self, workdir: Path, *, host: str = "127.0.0.1", port: int = 9100,
                 listen: str | None = None, netns: NetNamespace | None = None) -> None:
        argv = [binary("node_exporter"), f"--web.listen-address={listen or host}:{port}", "--log.level=warn"]
        super().__init__("node-exporter", argv, workdir, host=host, port=port, netns=netns)


class AlertSink(HttpComponent):
    """Our webhook sink: records Alertmanager notifications, lists them on GET /alerts."""

    ready_path = "/healthz"

    def __init__(self, workdir: Path, *, host: str = "127.0.0.1", port: int = 9099,
                 listen: str | None = None, netns: NetNamespace | None = None) -> None:
        super().__init__("alert-sink", python_module("alert_sink"), workdir, host=host, port=port, netns=netns,
                         env={"ALERT_SINK_HOST": listen or host, "ALERT_SINK_PORT": str(port)})

    @property
    def webhook_url(self) -> str:
        return f"{self.url}/alerts"

    def notifications(self) -> list[dict[str, Any]]:
        answer = self.get_json("/alerts")
        return list(answer["notifications"] if isinstance(answer, dict) else answer)
