"""Three shorter stories, each with the alert it must raise and clear.

* ``silent-failure``: a room's publishers stop sending while everyone stays connected: the node has
  PeerConnections up and no media coming in. ``SFUSilentFailure`` fires for that node; publishing
  again resolves it.
* ``node-down``: one Janus node is killed (through the stack: a signal natively, the Docker API
  in Compose). ``JanusDown`` fires for it, signaling stops placing rooms
  there; the node is restarted and the alert resolves.
* ``auth-storm``: clients keep retrying joins with bad tokens (expired, wrong signature, wrong
  room). ``SignalingAuthFailureSpike`` fires; when they stop it resolves.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import jwt

from loadtest.bots.media import ToneAudio
from loadtest.bots.peers import SyntheticVideo
from loadtest.scenarios.base import Run, ScenarioFailed
from signaling.client import SignalingClient

FIRE_TIMEOUT = 5 * 60
RESOLVE_TIMEOUT = 4 * 60


async def run_silent_failure(run: Run) -> None:
    publishers = max(1, run.size // 10)
    run.phase("media", room="quiet", publishers=publishers, subscribers=run.size - publishers)
    bots = await run.fleet.publishers("quiet", publishers)
    node = await run.room_node("quiet")
    await run.fleet.subscribers("quiet", max(1, run.size - publishers), feeds=publishers)
    run.facts["node"] = node
    await run.wait_for("Prometheus sees media arriving on the node",
                       lambda: _positive(run, f'instance:sfu_ingress_bits:rate1m{{instance="{node}"}}'), 90)
    run.phase("publishers-silent", node=node)
    senders = [s for bot in bots for pc in bot.pcs for s in pc.getSenders()]
    for sender in senders:
        sender.replaceTrack(None)
    fired = await run.wait_firing("SFUSilentFailure", node or "", FIRE_TIMEOUT)
    run.phase("publishers-back")
    for sender in senders:
        sender.replaceTrack(SyntheticVideo() if sender.kind == "video" else ToneAudio())
    resolved = await run.wait_resolved("SFUSilentFailure", node or "", RESOLVE_TIMEOUT)
    run.forbid(("SFUSilentFailure",), [n for n in run.endpoints.exporters if n != node])
    run.facts.update(fired_at=fired, resolved_at=resolved)
    run.phase("done")


async def _positive(run: Run, promql: str) -> bool:
    with contextlib.suppress(OSError, RuntimeError):
        return any(v > 0 for v in (await run.query(promql)).values())
    return False


async def run_node_down(run: Run) -> None:
    victim = "sfu-node-02"
    run.phase("rooms", rooms=len(run.endpoints.exporters))
    for index in range(len(run.endpoints.exporters)):
        await run.fleet.publishers(f"room-{index}", 1)
    run.phase("kill", node=victim)
    await run.act(run.stack.kill_node, victim)
    fired = await run.wait_firing("JanusDown", victim, FIRE_TIMEOUT)
    await run.wait_notified("JanusDown", victim)
    await run.fleet.lurkers("after-kill", 1)
    landed = await run.room_node("after-kill")
    if landed == victim:
        raise ScenarioFailed(f"a new room was placed on the dead node {victim}")
    run.phase("restart", node=victim)
    await run.act(run.stack.restart_node, victim)
    resolved = await run.wait_resolved("JanusDown", victim, RESOLVE_TIMEOUT)
    run.forbid(("JanusDown",), [n for n in run.endpoints.exporters if n != victim])
    run.facts.update(fired_at=fired, resolved_at=resolved, new_room_went_to=landed)
    run.phase("done")


def bad_tokens(key: str, room: str) -> list[str]:
    """An expired token, one signed with another key, one for another room, and garbage."""
    now = int(time.time())
    return [
        jwt.encode({"sub": "storm", "room": room, "exp": now - 60}, key, algorithm="HS256"),
        jwt.encode({"sub": "storm", "room": room, "exp": now + 600}, "not-the-key-" * 4, algorithm="HS256"),
        jwt.encode({"sub": "storm", "room": "elsewhere", "exp": now + 600}, key, algorithm="HS256"),
        "not-a-jwt",
    ]


async def run_auth_storm(run: Run) -> None:
    rate = max(4.0, run.size / 4)  # refused joins per second, well above the alert's 1/s
    tokens = bad_tokens(run.endpoints.token_key, "storm")
    clients = [await SignalingClient.connect(run.endpoints.signaling_ws) for _ in range(4)]
    stop = asyncio.Event()
    refused = 0

    async def storm(client: SignalingClient, token: str) -> None:
        nonlocal refused
        while not stop.is_set():
            reply = await client.join("storm", token, role="subscriber")
            if reply.get("code") != "unauthorized":
                raise ScenarioFailed(f"a bad token was not refused: {reply}")
            refused += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), len(clients) / rate)

    run.phase("storm", refused_per_s=rate)
    tasks = [asyncio.create_task(storm(c, t)) for c, t in zip(clients, tokens, strict=True)]
    try:
        fired = await run.wait_firing("SignalingAuthFailureSpike", None, FIRE_TIMEOUT)
        run.phase("calm", refused=refused)
        stop.set()
        await asyncio.gather(*tasks)
        resolved = await run.wait_resolved("SignalingAuthFailureSpike", None, RESOLVE_TIMEOUT)
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        for client in clients:
            await client.close()
    run.facts.update(fired_at=fired, resolved_at=resolved, refused=refused)
    run.phase("done")
