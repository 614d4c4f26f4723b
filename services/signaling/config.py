"""Configuration of the signaling service: environment variables (prefix ``SIGNALING_``) and flags.

Every setting has one entry in ``SETTINGS``: its name, parser, default (``None`` = required, no
default: secrets and the SFU node list) and help. ``load`` checks all of them at start and raises
one ``ConfigError`` listing every bad or missing value, so the operator fixes them in one go.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

PREFIX = "SIGNALING_"
POLICIES = ("round_robin", "least_rooms", "least_participants", "least_handles")
NODE_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


class ConfigError(ValueError):
    """One or more settings are missing or invalid; ``str()`` lists them all."""


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise ValueError("must be a TCP port 0-65535")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError("must be a positive number")
    return value


def _secret(min_length: int) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if len(text) < min_length:
            raise ValueError(f"must be at least {min_length} characters")
        return text

    return parse


def _policy(text: str) -> str:
    if text not in POLICIES:
        raise ValueError(f"must be one of {', '.join(POLICIES)}")
    return text


def _log_level(text: str) -> str:
    if text.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ValueError("must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
    return text.upper()


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


def parse_node_map(text: str, *, schemes: Sequence[str]) -> dict[str, str]:
    """Parse ``name=url,name=url`` (node names lowercase, URLs with one of ``schemes``)."""
    nodes: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, url = item.partition("=")
        if not sep or not NODE_NAME.fullmatch(name):
            raise ValueError(f"{item!r} is not name=url with a lowercase node name")
        if not url.startswith(tuple(f"{s}://" for s in schemes)):
            raise ValueError(f"{url!r} for {name} must start with {' or '.join(s + '://' for s in schemes)}")
        if name in nodes:
            raise ValueError(f"node {name} is listed twice")
        nodes[name] = url
    if not nodes:
        raise ValueError("lists no node")
    return nodes


def _janus_nodes(text: str) -> dict[str, str]:
    return parse_node_map(text, schemes=("ws", "wss"))


def _exporters(text: str) -> dict[str, str]:
    return parse_node_map(text, schemes=("http", "https")) if text.strip() else {}


@dataclass(frozen=True)
class Setting:
    name: str
    parse: Callable[[str], Any]
    default: str | None
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting("host", str, "0.0.0.0", "address the WebSocket and HTTP endpoints bind to"),
    Setting("port", _port, "8080", "port of /ws/signaling, /healthz, /readyz and /metrics"),
    Setting("admin_port", _port, "8081", "port of the admin API (placement policy, draining)"),
    Setting("token_key", _secret(32), None, "HS256 key that signs participant tokens (required)"),
    Setting("admin_token", _secret(16), None, "bearer token of the admin API (required)"),
    Setting("sfu_nodes", _janus_nodes, None,
            "Janus WebSocket API of each SFU node: name=ws://host:port,... (required)"),
    Setting("sfu_exporters", _exporters, "",
            "exporter /metrics URL of each node for least_handles: name=http://host:port/metrics,..."),
    Setting("placement_policy", _policy, "least_participants", f"initial policy: {', '.join(POLICIES)}"),
    Setting("region", str, "local", "value of the region label on the service's metrics"),
    Setting("max_message_bytes", _positive_int, "65536", "largest accepted client frame"),
    Setting("rate_limit", _positive_float, "50", "client messages per second per connection (sustained)"),
    Setting("rate_burst", _positive_int, "100", "client messages a connection may send in a burst"),
    Setting("max_participants", _positive_int, "1000", "participants per room"),
    Setting("send_queue", _positive_int, "512", "frames queued for a client before it counts as too slow"),
    Setting("max_connections", _positive_int, "10000",
            "client connections open at once, counted from TCP accept; upgrades beyond get HTTP 503"),
    Setting("max_connections_per_address", _positive_int, "2000",
            "client connections open at once from one source address (IPv6: one /64); beyond: HTTP 429"),
    Setting("join_timeout", _positive_float, "30",
            "seconds a new connection has to join, from the handshake or its last refused join; then closed 4408"),
    Setting("join_failure_limit", _positive_int, "600",
            "refused joins from one source address within the window that throttle it"),
    Setting("join_failure_window", _positive_float, "60",
            "seconds from a source's first refused join in which its refusals count"),
    Setting("join_throttle", _positive_float, "60",
            "seconds every join from a throttled address is refused (unauthorized, reason throttled)"),
    Setting("janus_timeout", _positive_float, "5", "seconds to wait for a Janus reply"),
    Setting("health_period", _positive_float, "2", "seconds between Janus health pings"),
    Setting("keepalive_interval", _positive_float, "25", "seconds between Janus session keepalives"),
    Setting("handles_poll", _positive_float, "5", "seconds between reads of the exporters' sfu_active_handles"),
    Setting("metrics", _bool, "true", "collect Prometheus metrics (false only for the overhead benchmark)"),
    Setting("log_level", _log_level, "INFO", "logging level"),
)


@dataclass(frozen=True)
class Config:
    host: str
    port: int
    admin_port: int
    token_key: str
    admin_token: str
    sfu_nodes: dict[str, str]
    sfu_exporters: dict[str, str]
    placement_policy: str
    region: str
    max_message_bytes: int
    rate_limit: float
    rate_burst: int
    max_participants: int
    send_queue: int
    max_connections: int
    max_connections_per_address: int
    join_timeout: float
    join_failure_limit: int
    join_failure_window: float
    join_throttle: float
    janus_timeout: float
    health_period: float
    keepalive_interval: float
    handles_poll: float
    metrics: bool
    log_level: str


def env_name(setting: Setting) -> str:
    return PREFIX + setting.name.upper()


def load(env: Mapping[str, str], overrides: Mapping[str, str | None] | None = None) -> Config:
    """Build a ``Config`` from ``env`` with ``overrides`` (flags) on top; raise ``ConfigError``."""
    values: dict[str, Any] = {}
    problems: list[str] = []
    for setting in SETTINGS:
        raw = (overrides or {}).get(setting.name)
        if raw is None:
            raw = env.get(env_name(setting), setting.default)
        if raw is None:
            problems.append(f"{env_name(setting)} is required ({setting.help})")
            continue
        try:
            values[setting.name] = setting.parse(raw)
        except ValueError as exc:
            shown = "<hidden>" if setting.name.endswith(("key", "token")) else repr(raw)
            problems.append(f"{env_name(setting)}={shown}: {exc}")
    if not problems and values["sfu_exporters"]:
        unknown = set(values["sfu_exporters"]) - set(values["sfu_nodes"])
        if unknown:
            problems.append(f"{PREFIX}SFU_EXPORTERS names nodes not in {PREFIX}SFU_NODES: {sorted(unknown)}")
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))
    return Config(**values)


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="signaling",
        description="Signaling service of the SFU Observability Lab. Every flag has an environment twin "
        f"({PREFIX}<FLAG>); flags win.",
    )
    for setting in SETTINGS:
        parser.add_argument(f"--{setting.name.replace('_', '-')}", dest=setting.name, default=None,
                            help=f"{setting.help} [{env_name(setting)}, default: {setting.default}]")
    return parser
