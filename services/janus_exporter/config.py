"""Configuration of the Janus exporter sidecar, from environment variables.

One table (``SETTINGS``) names each variable, its parser, its default (``None`` = required) and
its meaning. ``load`` checks them all and raises one ``ConfigError`` listing every problem.
``JANUS_ADMIN_SECRET`` and ``JANUS_STATS_PERIOD`` are the same variables the Janus node reads, so
the exporter and its node cannot disagree about them.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

MEDIA_SOURCES = ("events", "admin")


class ConfigError(ValueError):
    """One or more settings are missing or invalid; ``str()`` lists them all."""


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError("must be a positive number")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise ValueError("must be zero or positive")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise ValueError("must be a TCP port 0-65535")
    return value


def _concurrency(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 256:
        raise ValueError("must be an integer 1-256")
    return value


def _admin_url(text: str) -> str:
    if not text.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL such as http://127.0.0.1:7088/admin")
    return text.rstrip("/")


def _secret(text: str) -> str:
    if len(text) < 8:
        raise ValueError("must be at least 8 characters")
    return text


def _media_source(text: str) -> str:
    if text not in MEDIA_SOURCES:
        raise ValueError(f"must be one of {', '.join(MEDIA_SOURCES)}")
    return text


def _networks(text: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    networks = tuple(ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip())
    if not networks:
        raise ValueError("must list at least one address or CIDR")
    return networks


def _link_qdisc(text: str) -> str | None:
    if text == "off":
        return None
    if not re.fullmatch(r"[0-9a-f]{1,4}:", text):
        raise ValueError("must be a tc handle such as 10: or off")
    return text


def _optional(text: str) -> str | None:
    return text or None


@dataclass(frozen=True)
class Setting:
    env: str
    field: str
    parse: Callable[[str], Any]
    default: str | None
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting("JANUS_ADMIN_SECRET", "admin_secret", _secret, None,
            "Janus Admin API secret (required, no default; the node reads the same variable)"),
    Setting("JANUS_EXPORTER_ADMIN_URL", "admin_url", _admin_url, "http://127.0.0.1:7088/admin",
            "Janus Admin API endpoint"),
    Setting("JANUS_EXPORTER_LISTEN", "listen", str, "0.0.0.0", "address for /metrics and the event receiver"),
    Setting("JANUS_EXPORTER_PORT", "port", _port, "9188", "port for /metrics, /healthz and POST /events"),
    Setting("JANUS_EXPORTER_DEADLINE_SECONDS", "deadline_seconds", _positive_float, "4",
            "deadline of one Admin API sweep; keep it below Prometheus's scrape_timeout"),
    Setting("JANUS_EXPORTER_CONCURRENCY", "concurrency", _concurrency, "8", "Admin API requests in flight at once"),
    Setting("JANUS_EXPORTER_MEDIA_SOURCE", "media_source", _media_source, "events",
            "where media counters come from: 'events' (Janus event handler posts) or 'admin' (handle_info sweep)"),
    Setting("JANUS_STATS_PERIOD", "stats_period_seconds", _non_negative_float, "5",
            "seconds between Janus media-stat events (the node's stats_period)"),
    Setting("JANUS_EXPORTER_EVENT_SOURCES", "event_sources", _networks, "127.0.0.1/32,::1/128",
            "addresses/CIDRs allowed to POST events (the Janus node)"),
    Setting("JANUS_EXPORTER_MAX_EVENT_BYTES", "max_event_bytes", int, str(16 * 1024 * 1024),
            "largest accepted event post"),
    Setting("JANUS_EXPORTER_CPU_BUDGET_CORES", "cpu_budget_cores", _positive_float, "",
            "the node's CPU budget in cores (the Compose cpus: limit); default: CPUs of the machine"),
    Setting("JANUS_EXPORTER_PIDFILE", "pidfile", _optional, "", "Janus pid file; empty: find the process by name"),
    Setting("JANUS_EXPORTER_PROCESS_NAME", "process_name", str, "janus", "process name to find when no pid file"),
    Setting("JANUS_EXPORTER_LINK_QDISC", "link_qdisc", _link_qdisc, "10:",
            "tc handle of the node's shaped link (janus_node.link: slot 1 = 10:); off: no link metrics"),
)


@dataclass(frozen=True)
class Config:
    admin_secret: str
    admin_url: str
    listen: str
    port: int
    deadline_seconds: float
    concurrency: int
    media_source: str
    stats_period_seconds: float
    event_sources: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    max_event_bytes: int
    cpu_budget_cores: float
    pidfile: str | None
    process_name: str
    link_qdisc: str | None


def load(env: Mapping[str, str]) -> Config:
    """Parse every setting from ``env``; raise ``ConfigError`` naming each missing or bad one."""
    values: dict[str, Any] = {}
    problems: list[str] = []
    for setting in SETTINGS:
        raw = env.get(setting.env, "")
        if raw == "" and setting.default is None:
            problems.append(f"{setting.env} is required: {setting.help}")
            continue
        if raw == "" and setting.field == "cpu_budget_cores":
            raw = str(os.cpu_count() or 1)
        elif raw == "":
            raw = setting.default or ""
        try:
            values[setting.field] = setting.parse(raw)
        except ValueError as exc:
            problems.append(f"{setting.env}={raw!r} {exc}")
    if problems:
        raise ConfigError("; ".join(problems))
    return Config(**values)


def describe() -> str:
    """The settings as help text (``janus-exporter --help``)."""
    return "\n".join(f"  {s.env:34} {s.help} (default: {s.default if s.default is not None else 'required'})"
                     for s in SETTINGS)
