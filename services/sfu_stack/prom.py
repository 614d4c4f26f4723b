"""Asking a running Prometheus (or any JSON endpoint of the stack) over HTTP: one query helper for
scenarios, labs and tests, whichever runner the stack is on."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from typing import Any


def get_json(url: str, **params: str) -> Any:
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    with urllib.request.urlopen(url + query, timeout=10) as reply:
        return json.load(reply)


def query(prometheus_url: str, promql: str, at: float | None = None) -> list[dict[str, Any]]:
    """An instant query's result vector (now, or at the Unix time ``at``); raises ``RuntimeError``
    with Prometheus's error."""
    params = {"query": promql} if at is None else {"query": promql, "time": f"{at:.3f}"}
    answer = get_json(f"{prometheus_url}/api/v1/query", **params)
    if answer.get("status") != "success":
        raise RuntimeError(f"{promql}: {answer.get('error')}")
    return list(answer["data"]["result"])
