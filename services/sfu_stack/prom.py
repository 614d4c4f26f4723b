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


def query(prometheus_url: str, promql: str) -> list[dict[str, Any]]:
    """An instant query's result vector; raises ``RuntimeError`` with Prometheus's error."""
    answer = get_json(f"{prometheus_url}/api/v1/query", query=promql)
    if answer.get("status") != "success":
        raise RuntimeError(f"{promql}: {answer.get('error')}")
    return list(answer["data"]["result"])
