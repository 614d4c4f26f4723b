"""Helpers for tests: reading metrics, many clients at once, the cardinality check."""

from __future__ import annotations

import asyncio
import secrets
import urllib.error
import urllib.request
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from signaling.client import SignalingClient
from signaling.config import POLICIES
from signaling.metrics import HTTP_ENDPOINTS, ICE_STATUSES, JANUS_REQUESTS
from signaling.protocol import KNOWN_TYPES, PROTOCOL_ERROR_REASONS
from signaling.tokens import FAILURE_REASONS, mint

TOKEN_KEY = "test-signing-key-" + secrets.token_hex(16)
ADMIN_TOKEN = "test-admin-" + secrets.token_hex(8)


def ws_url(server: Any) -> str:
    return f"ws://127.0.0.1:{server.port}/ws/signaling"


def token(room: str, user: str | None = None, **kwargs: float) -> str:
    return mint(TOKEN_KEY, room=room, user=user, **kwargs)


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


async def join_many(url: str, room: str, count: int, token_for: Any, *, role: str = "subscriber",
                    concurrency: int = 50) -> list[SignalingClient]:
    """Open ``count`` connections and join them all to ``room``; fail on the first refusal."""
    gate = asyncio.Semaphore(concurrency)

    async def one(index: int) -> SignalingClient:
        async with gate:
            client = await SignalingClient.connect(url)
            reply = await client.join(room, token_for(room), role=role, display=f"p{index}")
            assert reply["type"] == "joined", reply
            return client

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def leave_all(clients: list[SignalingClient], concurrency: int = 50) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def one(client: SignalingClient) -> None:
        async with gate:
            reply = await client.request({"type": "leave"}, "left")
            assert reply["type"] == "left", reply
            await client.close()

    await asyncio.gather(*(one(c) for c in clients))


async def http(url: str, *, method: str = "GET", body: bytes | None = None,
               headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """A real HTTP request from a worker thread, so an in-process server keeps running."""
    def call() -> tuple[int, bytes]:
        request = urllib.request.Request(url, method=method, data=body, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                return reply.status, reply.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    return await asyncio.to_thread(call)


async def scrape(port: int) -> str:
    status, body = await http(f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    return body.decode()


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape_samples(url: str) -> Samples:
    """Every sample of an exposition at ``url``, keyed by name and sorted labels."""
    status, body = await http(url)
    assert status == 200, (url, status)
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body.decode()) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value, 0 when absent."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def label_values(text: str) -> dict[str, set[str]]:
    """Every label name in an exposition (``le`` excluded) with the set of values it takes."""
    seen: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            for name, value in s.labels.items():
                if name != "le":
                    seen.setdefault(name, set()).add(value)
    return seen


def allowed_label_values(nodes: list[str], region: str) -> dict[str, set[str]]:
    """The bounded set each label of the signaling service may take."""
    return {
        "region": {region},
        "msg_type": set(KNOWN_TYPES) | {"unknown"},
        "direction": {"in", "out"},
        "reason": set(FAILURE_REASONS) | set(PROTOCOL_ERROR_REASONS),
        "status": set(ICE_STATUSES),
        "method": {"GET", "PUT", "POST", "DELETE", "other"},
        "endpoint": set(HTTP_ENDPOINTS),
        "node": set(nodes),
        "policy": set(POLICIES),
        "request": set(JANUS_REQUESTS),
    }


def cardinality_violations(text: str, allowed: dict[str, set[str]]) -> list[str]:
    problems = []
    for name, values in label_values(text).items():
        if name not in allowed:
            problems.append(f"label {name!r} is not in the allowed list (values: {sorted(values)[:5]}...)")
        elif values - allowed[name]:
            problems.append(f"label {name!r} has values outside its set: {sorted(values - allowed[name])[:5]}")
    return problems
