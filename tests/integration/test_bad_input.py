"""Every kind of bad input gets a clear error (frame or close code), a metric, and harms no other room."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import signal
import socket
import time

import jwt
import pytest
import pytest_asyncio
import websockets

from sfu_stack.readiness import wait_until_async
from signaling.client import SignalingClient

from support import http, sample, token, ws_url

pytestmark = pytest.mark.janus
MAX_BYTES = 4096


@pytest_asyncio.fixture
async def stack(janus_nodes, signaling_server):
    """Two Janus nodes, the service, and a bystander joined to room 'calm' on the first node."""
    nodes = janus_nodes(2)
    server = await signaling_server(nodes, max_message_bytes=str(MAX_BYTES), rate_limit="20", rate_burst="20")
    bystander = await SignalingClient.connect(ws_url(server))
    assert (await bystander.join("calm", token("calm")))["type"] == "joined"
    assert server.hub.rooms["calm"].node == nodes[0].node_name
    yield server, nodes, bystander
    await bystander.close()


async def assert_bystander_unaffected(server, bystander: SignalingClient) -> None:
    started = time.monotonic()
    assert (await bystander.request({"type": "ping"}, "pong", timeout=5))["type"] == "pong"
    assert time.monotonic() - started < 1.0
    assert "calm" in server.hub.rooms and len(server.hub.rooms["calm"].members) == 1
    assert [e for e in bystander.events if e["type"] == "error"] == []


def errors(server, reason: str) -> float:
    return sample(server.registry, "signaling_protocol_errors_total", reason=reason)


def auth_failures(server, reason: str) -> float:
    return sample(server.registry, "signaling_auth_failures_total", reason=reason)


def join(room: str, token_value: object = None, **extra: object) -> dict:
    frame = {"type": "join", "room": room, **extra}
    if token_value is not None:
        frame["token"] = token_value
    return frame


FRAME_CASES = [
    # (test id, joined first?, frame, error code, metric (kind, reason))
    ("malformed JSON", False, "{not json", "invalid_json", ("protocol", "invalid_json")),
    ("not an object", False, "[1, 2]", "not_object", ("protocol", "not_object")),
    ("unknown type", False, {"type": "dance"}, "unknown_type", ("protocol", "unknown_type")),
    ("type of wrong kind", False, {"type": ["join"]}, "unknown_type", ("protocol", "unknown_type")),
    ("wrong field type", False, {"type": "join", "room": 5, "token": "x"}, "invalid_field",
     ("protocol", "invalid_field")),
    ("missing field", True, {"type": "subscribe"}, "missing_field", ("protocol", "missing_field")),
    ("bad role", False, join("r1", "t", role="king"), "invalid_field", ("protocol", "invalid_field")),
    ("missing token", False, join("r1"), "unauthorized", ("auth", "missing")),
    ("malformed token", False, join("r1", "not-a-jwt"), "unauthorized", ("auth", "malformed")),
    ("expired token", False, join("r1", token("r1", ttl_seconds=-10)), "unauthorized", ("auth", "expired")),
    ("forged token", False, join("r1", jwt.encode({"sub": "eve", "room": "r1", "exp": time.time() + 60},
                                                  "another-key-of-at-least-32-bytes!!", algorithm="HS256")),
     "unauthorized", ("auth", "bad_signature")),
    ("token for another room", False, join("r1", token("calm")), "unauthorized", ("auth", "wrong_room")),
    ("publish before join", False, {"type": "publish", "sdp": "v=0"}, "not_joined", ("protocol", "not_joined")),
    ("second join", True, join("r2", token("r2")), "already_joined", ("protocol", "already_joined")),
    ("subscribe to a missing feed", True, {"type": "subscribe", "feed": 12345}, "no_such_feed",
     ("protocol", "no_such_feed")),
    ("answer without subscription", True, {"type": "answer", "feed": 1, "sdp": "v=0"}, "no_such_feed",
     ("protocol", "no_such_feed")),
    ("subscriber publishes", True, {"type": "publish", "sdp": "v=0"}, "not_publisher",
     ("protocol", "not_publisher")),
]


@pytest.mark.parametrize("joined, frame, code, metric", [c[1:] for c in FRAME_CASES],
                         ids=[c[0] for c in FRAME_CASES])
async def test_a_bad_frame_gets_an_error_frame_and_a_metric_and_the_connection_survives(
        stack, joined, frame, code, metric):
    server, _, bystander = stack
    kind, reason = metric
    count = errors if kind == "protocol" else auth_failures
    before = count(server, reason)
    client = await SignalingClient.connect(ws_url(server))
    try:
        if joined:
            assert (await client.join("victim", token("victim"), role="subscriber"))["type"] == "joined"
        reply = await client.request(frame, "error")
        assert reply["type"] == "error" and reply["code"] == code, reply
        assert reply["message"]
        if kind == "auth":
            assert reply["reason"] == reason
        assert count(server, reason) == before + 1
        assert (await client.request({"type": "ping"}, "pong"))["type"] == "pong", "connection stays usable"
    finally:
        await client.close()
    await assert_bystander_unaffected(server, bystander)


async def test_an_oversized_frame_closes_with_1009_and_is_counted(stack):
    server, _, bystander = stack
    client = await SignalingClient.connect(ws_url(server))
    await client.send(json.dumps({"type": "ping", "pad": "x" * MAX_BYTES}))
    with pytest.raises(websockets.ConnectionClosedError) as closed:
        await client.receive(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    await wait_until_async(lambda: errors(server, "message_too_big") == 1, timeout=5, what="counted")
    await assert_bystander_unaffected(server, bystander)


async def test_a_flood_over_the_rate_limit_is_dropped_with_one_error_per_second(stack):
    server, _, bystander = stack
    client = await SignalingClient.connect(ws_url(server))
    try:
        for _ in range(200):
            await client.send({"type": "ping"})
        reply = await client.receive("error", timeout=5)
        assert reply["code"] == "rate_limited"
        await wait_until_async(lambda: errors(server, "rate_limited") >= 150, timeout=5, what="drops counted")
        pongs = sample(server.registry, "signaling_messages_total", msg_type="pong", direction="out")
        assert pongs < 60, "most of the flood was dropped, not answered"
    finally:
        await client.close()
    await assert_bystander_unaffected(server, bystander)


async def test_a_client_that_never_reads_is_closed_as_slow_consumer(stack):
    server, _, bystander = stack
    server.config = dataclasses.replace(server.config, rate_limit=1e6, rate_burst=10**6)  # only the queue limits
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    client = await websockets.connect(ws_url(server), sock=sock, max_queue=1, compression=None)
    try:
        frame = json.dumps({"type": "ping", "id": "x" * 1000})
        deadline = time.monotonic() + 30
        while errors(server, "slow_consumer") == 0 and time.monotonic() < deadline:
            try:
                await asyncio.wait_for(client.send(frame), 1)
            except (TimeoutError, websockets.ConnectionClosed):
                await asyncio.sleep(0.05)
        assert errors(server, "slow_consumer") == 1
        await assert_bystander_unaffected(server, bystander)
        await wait_until_async(lambda: sample(server.registry, "signaling_websockets_active", region="local") == 1,
                               timeout=10, what="the slow client's connection is gone")
    finally:
        client.transport.abort()


async def test_janus_that_stops_answering_mid_join_gives_sfu_timeout_and_is_marked_unhealthy(stack):
    server, nodes, bystander = stack
    frozen = nodes[1]
    frozen.signal(signal.SIGSTOP)
    try:
        client = await SignalingClient.connect(ws_url(server))
        started = time.monotonic()
        reply = await client.request(join("victim", token("victim")), "joined", timeout=10)
        assert reply["type"] == "error" and reply["code"] in ("sfu_timeout", "sfu_unavailable"), reply
        assert time.monotonic() - started < server.config.janus_timeout + 1
        assert errors(server, "sfu_timeout") + errors(server, "sfu_unavailable") == 1
        await wait_until_async(lambda: not server.nodes[frozen.node_name].healthy, timeout=3,
                               what="frozen node marked unhealthy")
        await assert_bystander_unaffected(server, bystander)
        reply = await client.request(join("victim", token("victim")), "joined")
        assert reply["type"] == "joined"
        assert server.hub.rooms["victim"].node == nodes[0].node_name, "the new room avoids the frozen node"
        await client.close()
    finally:
        frozen.signal(signal.SIGCONT)
    await wait_until_async(lambda: server.nodes[frozen.node_name].healthy, timeout=5, what="node healthy again")


async def test_a_killed_janus_is_unhealthy_within_a_health_period_and_readyz_tells_the_truth(stack):
    server, nodes, bystander = stack
    doomed = await SignalingClient.connect(ws_url(server))
    assert (await doomed.join("doomed", token("doomed")))["type"] == "joined"
    assert server.hub.rooms["doomed"].node == nodes[1].node_name
    status, body = await http(f"http://127.0.0.1:{server.port}/readyz")
    assert status == 200 and json.loads(body)["nodes"] == {n.node_name: True for n in nodes}

    nodes[1].process.kill()
    killed = time.monotonic()
    await wait_until_async(lambda: not server.nodes[nodes[1].node_name].healthy,
                           timeout=server.config.health_period, what="killed node marked unhealthy")
    print(f"\nkilled node marked unhealthy after {time.monotonic() - killed:.3f} s")
    assert (await doomed.receive("error"))["code"] == "sfu_unavailable"
    assert "doomed" not in server.hub.rooms
    status, body = await http(f"http://127.0.0.1:{server.port}/readyz")
    assert status == 200 and json.loads(body)["nodes"][nodes[1].node_name] is False

    newcomer = await SignalingClient.connect(ws_url(server))
    assert (await newcomer.join("fresh", token("fresh")))["type"] == "joined"
    assert server.hub.rooms["fresh"].node == nodes[0].node_name
    await assert_bystander_unaffected(server, bystander)

    nodes[0].process.kill()
    await wait_until_async(lambda: not server.ready(), timeout=server.config.health_period, what="no node")
    status, body = await http(f"http://127.0.0.1:{server.port}/readyz")
    assert status == 503 and json.loads(body)["ready"] is False
    reply = await (await SignalingClient.connect(ws_url(server))).request(join("late", token("late")), "joined")
    assert reply["code"] == "sfu_unavailable"
    for client in (doomed, newcomer):
        await client.close()
