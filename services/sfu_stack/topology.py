"""The lab's topology in one place: its components, their native ports, and how they map to Compose.

``compose.yaml`` is the Compose description; ``COMPONENTS`` is the native one, keyed by the same
service names, so a test can hold them to each other (same components, same ports for what
Prometheus scrapes). Compose gives each SFU node a pod (``pod_service``) that Janus and its exporter
join. Natively every component runs inside one network namespace, so the four SFU nodes and their
exporters take consecutive ports where Compose gives each its own host.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "compose.yaml"

NODE_NAMES = tuple(f"sfu-node-{i:02d}" for i in range(1, 5))
SIGNALING_PORT = 8080
SIGNALING_ADMIN_PORT = 8081
PROMETHEUS_PORT = 9090
ALERTMANAGER_PORT = 9093
ALERT_SINK_PORT = 9099
NODE_EXPORTER_PORT = 9100
JANUS_WS_PORT = 8188
JANUS_ADMIN_PORT = 7088
EXPORTER_PORT = 9188
BOTS_METRICS_PORT = 9400  # the scenario runner's bots, on the namespace's host end natively
FEDERATION_GLOBAL_PORT = 9091  # the federation profile's global Prometheus (natively: `lab federation up`)
FEDERATION_REGION_PORTS = {"prometheus-region-a": 9095, "prometheus-region-b": 9096}  # native only
SFU_NODE_CPUS_DEFAULT = 1.0  # Compose: cpus: ${SFU_NODE_CPUS:-1}


def janus_ws_port(index: int) -> int:
    return JANUS_WS_PORT + index


def janus_admin_port(index: int) -> int:
    return JANUS_ADMIN_PORT + index


def exporter_port(index: int) -> int:
    return EXPORTER_PORT + index


def pod_service(node: str) -> str:
    """The Compose service that holds ``node``'s network and PID namespaces (Janus and its exporter join it)."""
    return f"{node}-pod"


def exporter_service(node: str) -> str:
    return f"{node}-exporter"


@dataclass(frozen=True)
class Spec:
    """One component: the Compose service of the same name, and how the native stack checks it."""

    name: str
    port: int | None  # the port that answers the health check (None: no network service)
    health_path: str | None = None  # HTTP path answering 200 when healthy; None: the port being open is enough
    native: bool = True
    note: str = ""
    extra_ports: dict[str, int] = field(default_factory=dict)


COMPONENTS: tuple[Spec, ...] = (
    *(Spec(name, janus_ws_port(i), None, extra_ports={"admin (namespace 127.0.0.1)": janus_admin_port(i)})
      for i, name in enumerate(NODE_NAMES)),
    *(Spec(exporter_service(name), exporter_port(i), "/healthz") for i, name in enumerate(NODE_NAMES)),
    *(Spec(pod_service(name), None, native=False,
           note="Compose only: holds the node's namespaces; natively the lab's one namespace does")
      for name in NODE_NAMES),
    Spec("signaling", SIGNALING_PORT, "/healthz", extra_ports={"admin": SIGNALING_ADMIN_PORT}),
    Spec("node-exporter", NODE_EXPORTER_PORT, "/metrics"),
    Spec("alert-sink", ALERT_SINK_PORT, "/healthz"),
    Spec("alertmanager-config", None, native=True,
         note="one-shot: natively lab up renders alertmanager.yml before Alertmanager starts"),
    Spec("alertmanager", ALERTMANAGER_PORT, "/-/ready"),
    Spec("prometheus", PROMETHEUS_PORT, "/-/ready"),
    Spec("grafana", None, native=False,
         note="no Grafana package on these machines: use Prometheus's and Alertmanager's own UIs"),
)


def spec(name: str) -> Spec:
    for candidate in COMPONENTS:
        if candidate.name == name:
            return candidate
    raise KeyError(f"no component named {name!r}; known: {', '.join(c.name for c in COMPONENTS)}")


def compose_services(profiles: tuple[str, ...] = (), compose_file: Path = COMPOSE_FILE) -> dict[str, Any]:
    """The services of ``compose.yaml`` active with ``profiles`` (services without a profile always are)."""
    import yaml

    document = yaml.safe_load(compose_file.read_text())
    return {name: service for name, service in document["services"].items()
            if not service.get("profiles") or set(service["profiles"]) & set(profiles)}
