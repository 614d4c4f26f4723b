"""What every lab check shares: where the live stack answers, the trainee's answers, the report.

A check reads the live stack (Prometheus, Alertmanager, the alert sink, signaling's /metrics and
admin API, the exporters) through ``LiveStack``, the trainee's answers from ``labs/answers.yml``
through ``Answers``, and collects what passed and what is missing in a ``Check``. A query the
trainee wrote runs through ``Check.trainee_query``: a PromQL error becomes a missing item that
quotes Prometheus, never a traceback.
"""

from __future__ import annotations

import json
import math
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from lab.native import NativeStack
from sfu_stack import topology
from sfu_stack.control import StackControl

ANSWERS_FILE = topology.REPO / "labs" / "answers.yml"
# Job names of prometheus/prometheus.yml the checks select on.
SIGNALING_JOB = "signaling_backend"
SFU_JOB = "sfu_nodes"
BOTS_JOB = "loadtest_bots"


class StackNotUp(RuntimeError):
    """The live stack (or the part a lab needs) does not answer; the message says what to start."""


class AnswersError(ValueError):
    """The answers file is missing or not the YAML the labs expect."""


class PrometheusError(RuntimeError):
    """Prometheus refused a query (bad PromQL, bad parameters); the message is Prometheus's."""


# ---- HTTP -----------------------------------------------------------------------------------------

def http_json(url: str, *, method: str = "GET", body: Any = None, headers: Mapping[str, str] | None = None,
              timeout: float = 10.0) -> Any:
    """A JSON request; ``StackNotUp`` when nothing answers, ``PrometheusError`` on a JSON error reply."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, method=method, data=data,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return json.load(reply)
    except urllib.error.HTTPError as exc:
        try:
            answer = json.load(exc)
        except ValueError:
            answer = {}
        raise PrometheusError(answer.get("error") or answer.get("message") or f"HTTP {exc.code} from {url}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise StackNotUp(f"nothing answers at {url} ({getattr(exc, 'reason', exc)})") from exc


def http_text(url: str, timeout: float = 10.0) -> str:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            return reply.read().decode()
    except (urllib.error.URLError, OSError) as exc:
        raise StackNotUp(f"nothing answers at {url} ({getattr(exc, 'reason', exc)})") from exc


def prometheus_api(url: str, path: str, **params: Any) -> Any:
    """``data`` of a Prometheus API answer; ``PrometheusError`` with Prometheus's message on failure."""
    query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
    answer = http_json(f"{url}{path}?{query}" if query else f"{url}{path}")
    if answer.get("status") != "success":
        raise PrometheusError(str(answer.get("error")))
    return answer["data"]


def instant(url: str, promql: str, at: float | None = None) -> list[dict[str, Any]]:
    return list(prometheus_api(url, "/api/v1/query", query=promql, time=f"{at:.3f}" if at else None)["result"])


def matrix(url: str, promql: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
    data = prometheus_api(url, "/api/v1/query_range", query=promql, start=f"{start:.3f}", end=f"{end:.3f}",
                          step=f"{step:g}")
    return list(data["result"])


def scalar_values(result: list[dict[str, Any]]) -> list[float]:
    return [float(series["value"][1]) for series in result]


def node_of(labels: Mapping[str, str]) -> str:
    """The SFU node a series is about (its ``node`` label, else ``instance``)."""
    return labels.get("node") or labels.get("instance") or ""


def by_node(result: list[dict[str, Any]]) -> dict[str, float]:
    return {node_of(series["metric"]): float(series["value"][1]) for series in result}


def finite(value: float) -> bool:
    return not (math.isnan(value) or math.isinf(value))


# ---- the stack ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LiveStack:
    """Where each part of the running stack answers (natively: ``lab up``'s namespace address)."""

    prometheus: str
    alertmanager: str
    alert_sink: str
    signaling: str  # http://host:8080 (/metrics, /healthz)
    signaling_admin: str  # http://host:8081
    admin_token: str
    exporters: dict[str, str]  # node -> /metrics URL
    home: Path  # LAB_HOME: scenario results, the Prometheus run folder
    host_ip: str = ""  # the namespace's host end (bots, scratch exporters)
    ns_ip: str = ""

    @classmethod
    def of(cls, control: StackControl, home: Path, *, prometheus: str | None = None) -> LiveStack:
        """Where ``control``'s stack answers (``StackControl.endpoints``), whichever runner it is on."""
        found = control.endpoints()
        signaling = found.signaling_ws.split("/ws/", 1)[0].replace("ws://", "http://", 1)
        return cls(prometheus=prometheus or found.prometheus, alertmanager=found.alertmanager,
                   alert_sink=found.alert_sink, signaling=signaling, signaling_admin=found.signaling_admin,
                   admin_token=found.admin_token, exporters=dict(found.exporters), home=home,
                   host_ip=found.ice_address or "", ns_ip=urlsplit(signaling).hostname or "")

    @classmethod
    def native(cls, stack: NativeStack | None = None, *, prometheus: str | None = None) -> LiveStack:
        """The stack ``lab up`` started (``StackNotUp`` naming ``lab up`` when there is none)."""
        from lab.control import NativeControl

        stack = stack or NativeStack()
        if stack.netns() is None:
            raise StackNotUp(f"the native stack is not up (no state in {stack.state_file}): start it with `lab up`")
        return cls.of(NativeControl(stack), stack.home, prometheus=prometheus)

    def require_prometheus(self) -> None:
        try:
            http_text(f"{self.prometheus}/-/ready", timeout=5)
        except StackNotUp as exc:
            raise StackNotUp(f"Prometheus does not answer: {exc}. Is the stack up? `lab status`, else `lab up`") \
                from exc

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        return http_json(self.signaling_admin + path, method=method, body=body,
                         headers={"Authorization": f"Bearer {self.admin_token}"})


def last_scenario(home: Path, result_file: Path | None = None) -> dict[str, Any]:
    """The last scenario's result (``lab scenario`` writes LAB_HOME/scenarios/last.json)."""
    path = result_file or home / "scenarios" / "last.json"
    try:
        result = json.loads(Path(path).read_text())
    except FileNotFoundError as exc:
        raise StackNotUp(f"no scenario result at {path}: run `lab scenario incident` first "
                         "(or pass --result FILE)") from exc
    except ValueError as exc:
        raise StackNotUp(f"{path} is not a scenario result (not JSON: {exc})") from exc
    if not {"started_at", "ended_at"} <= set(result):
        raise StackNotUp(f"{path} is not a scenario result (no started_at / ended_at)")
    return dict(result)


# ---- answers --------------------------------------------------------------------------------------

class Answers:
    """The trainee's answers: ``labN: {key: value}`` in a YAML file."""

    def __init__(self, document: Mapping[str, Any], source: str) -> None:
        self.document, self.source = document, source

    @classmethod
    def load(cls, path: Path | None = None) -> Answers:
        path = Path(path or os.environ.get("LAB_ANSWERS") or ANSWERS_FILE)
        try:
            text = path.read_text()
        except FileNotFoundError as exc:
            raise AnswersError(f"no answers file at {path}: copy the template labs/answers.yml there, "
                               "or pass --answers FILE") from exc
        try:
            document = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise AnswersError(f"{path} is not valid YAML: {exc}") from exc
        if not isinstance(document, dict):
            raise AnswersError(f"{path} must be a mapping of lab1 ... lab8 sections, not {type(document).__name__}")
        for name, section in document.items():
            if section is not None and not isinstance(section, dict):
                raise AnswersError(f"{path}: section {name} must be a mapping of answers (key: value)")
        return cls(document, str(path))

    def get(self, lab: int, key: str) -> Any:
        value = (self.document.get(f"lab{lab}") or {}).get(key)
        if isinstance(value, str):
            value = value.strip()
        return None if value in (None, "", []) else value


# ---- one check ------------------------------------------------------------------------------------

@dataclass
class Check:
    """One lab's verdict: what passed, what is missing (each with what to do next)."""

    lab: int
    title: str
    answers: Answers
    stack: LiveStack
    passed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing

    def good(self, text: str) -> None:
        self.passed.append(text)

    def lack(self, text: str) -> None:
        self.missing.append(text)

    def answer(self, key: str, what: str) -> Any:
        """The trainee's answer ``labN.key``, or ``None`` after recording it as missing."""
        value = self.answers.get(self.lab, key)
        if value is None:
            self.lack(f"{self.answers.source}: lab{self.lab}.{key} is blank: write {what}")
        return value

    def trainee_query(self, key: str, promql: str, *, at: float | None = None,
                      span: tuple[float, float, float] | None = None,
                      prometheus: str | None = None) -> list[dict[str, Any]] | None:
        """The trainee's PromQL, instant or over ``span`` (start, end, step); ``None`` if Prometheus refused it."""
        url = prometheus or self.stack.prometheus
        try:
            if span is not None:
                return matrix(url, promql, *span)
            return instant(url, promql, at)
        except PrometheusError as exc:
            self.lack(f"lab{self.lab}.{key} is not a query Prometheus accepts: {exc}. Try it in Prometheus's UI "
                      f"({url}/graph) until it runs")
            return None

    def render(self) -> str:
        lines = [f"lab {self.lab} ({self.title}): {'passed' if self.ok else 'not yet'}"]
        lines += [f"  ok       {text}" for text in self.passed]
        lines += [f"  missing  {text}" for text in self.missing]
        return "\n".join(lines)


def now() -> float:
    return time.time()
