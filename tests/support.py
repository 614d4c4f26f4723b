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


# ---- scenario results (the JSON ``lab scenario`` and ``loadtest-bots`` write) ----------------------

def alert_span(result: dict, alertname: str, node: str | None = None) -> dict:
    found = [s for s in result["alerts"] if s["alertname"] == alertname and (node is None or s["node"] == node)]
    assert found, f"{alertname} never fired: {result['alerts']}"
    return found[-1]


def assert_incident_story(result: dict, hot: str = "sfu-node-04", *, link_clears_after_fix: bool = True) -> None:
    """The incident as either runner's result records it: least_rooms piled rooms on the mega-room's
    node, both alerts fired there (and nowhere else) before the fix and resolved after it, and the
    hot node's chain shows its link dropping first and the NACK storm following; with
    ``link_clears_after_fix``, the drops also stop once the piled rooms have ended."""
    assert result["ok"], result["error"]
    facts = result["facts"]
    assert facts["mega_room_node"] == hot
    assert facts["new_rooms_on_hot_node_under_least_rooms"] >= 1
    assert facts["new_rooms_after_fix"] >= 1 and facts["new_rooms_on_hot_node_after_fix"] == 0
    fix = next(p["at"] for p in result["phases"] if p["phase"] == "fix")
    for alert in ("SFUHighCPU", "SFUNackStorm"):
        span = alert_span(result, alert, hot)
        assert span["fired_at"] <= fix < span["resolved_at"], span
    quiet = [s for s in result["alerts"] if s["alertname"] in ("SFUHighCPU", "SFUNackStorm") and s["node"] != hot]
    assert quiet == [], "the other nodes stay quiet"
    # The chain, as Prometheus recorded it: the link drops first, the NACK storm follows.
    chain, storm = facts["hot_node_chain"], alert_span(result, "SFUNackStorm", hot)
    # A row lacks a series Prometheus had no two samples of yet (the first 10-20 s); the rest have all.
    assert sum("link_drops_per_s" in row and "nacks_per_s" in row for row in chain) >= len(chain) - 2, chain
    chain = [row for row in chain if "link_drops_per_s" in row and "nacks_per_s" in row]
    first_drop = next(row["at"] for row in chain if row["link_drops_per_s"] >= 1)
    first_storm = next(row["at"] for row in chain if row["nacks_per_s"] > 20)
    assert first_drop <= first_storm < storm["fired_at"], (first_drop, first_storm, storm)
    assert max(row.get("retransmissions_per_s", 0) for row in chain) > 0, "Janus answered NACKs through the link"
    spiral = facts["spiral"]  # the phases' averages, as docs/loadtest.md's table shows them
    assert spiral["pile_up"]["dropped_percent"] > 1 and spiral["pile_up"]["nacks_per_s"] > 20, spiral
    assert spiral["after_fix"]["rooms"] <= 1.5, spiral
    drops = facts["link_dropped_packets"]
    assert drops[hot] > 100 and all(drops[n] < 0.01 * drops[hot] for n in drops if n != hot), drops
    if link_clears_after_fix:
        stopped = next((row["at"] for i, row in enumerate(chain)
                        if row["at"] > fix and all(later["link_drops_per_s"] < 1 for later in chain[i:])), None)
        # No room reaches the node after the fix; the piled ones live 48 s; rates over 30 s of 15 s scrapes.
        assert stopped is not None and stopped <= fix + 48 + 30 + 15, (stopped, fix, chain[-3:])
        assert chain[-1]["nacks_per_s"] < 20 and chain[-1]["link_drops_per_s"] == 0, chain[-1]
        assert spiral["after_fix"]["dropped_percent"] < 0.5, spiral
