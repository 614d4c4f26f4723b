"""Helpers for tests: reading metrics, many clients at once.

The label-cardinality rule lives in ``lab.labs.cardinality`` (lab 2 applies it too)."""

from __future__ import annotations

import asyncio
import secrets
import urllib.error
import urllib.request
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from signaling.client import SignalingClient
from signaling.tokens import mint

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
