"""The service's Janus connections: keepalives hold sessions, expiry and restarts are handled."""

from __future__ import annotations

import asyncio

import pytest

from sfu_stack.readiness import wait_until_async
from signaling.client import SignalingClient

from support import sample, token, ws_url

pytestmark = pytest.mark.janus


async def test_keepalives_hold_a_session_past_the_janus_session_timeout(janus_nodes, signaling_server):
    (node,) = janus_nodes(1, JANUS_SESSION_TIMEOUT="2")
    server = await signaling_server([node], keepalive_interval="0.5")
    client = await SignalingClient.connect(ws_url(server))
    assert (await client.join("kept", token("kept")))["type"] == "joined"
    await asyncio.sleep(5)  # what is under test is time passing: two and a half session timeouts
    assert len(node.admin("list_sessions")["sessions"]) == 1
    assert (await client.request({"type": "ping"}, "pong"))["type"] == "pong"
    assert client.events == []
    await client.close()


async def test_an_expired_janus_session_is_reported_to_its_participant(janus_nodes, signaling_server):
    (node,) = janus_nodes(1, JANUS_SESSION_TIMEOUT="1")
    server = await signaling_server([node], keepalive_interval="60")
    client = await SignalingClient.connect(ws_url(server))
    assert (await client.join("expiring", token("expiring")))["type"] == "joined"
    reply = await client.receive("error", timeout=10)
    assert reply["code"] == "sfu_unavailable" and "expired" in reply["message"]
    assert sample(server.registry, "signaling_participants_active", region="local") == 0
    assert "expiring" not in server.hub.rooms
    assert (await client.join("expiring", token("expiring")))["type"] == "joined", "the client may join again"
    await client.close()


async def test_a_restarted_janus_is_reconnected_and_takes_rooms_again(janus_nodes, signaling_server):
    (node,) = janus_nodes(1)
    server = await signaling_server([node])
    node.stop()
    await wait_until_async(lambda: not server.nodes[node.node_name].healthy, timeout=2, what="node down")
    node.start_and_wait()
    await wait_until_async(lambda: server.nodes[node.node_name].healthy, timeout=10, what="node reconnected")
    client = await SignalingClient.connect(ws_url(server))
    assert (await client.join("after-restart", token("after-restart")))["type"] == "joined"
    await client.close()


async def test_a_full_room_refuses_the_next_participant(janus_nodes, signaling_server):
    (node,) = janus_nodes(1)
    server = await signaling_server([node], max_participants="2")
    clients = [await SignalingClient.connect(ws_url(server)) for _ in range(3)]
    for client in clients[:2]:
        assert (await client.join("small", token("small")))["type"] == "joined"
    reply = await clients[2].join("small", token("small"))
    assert reply["code"] == "room_full"
    assert sample(server.registry, "signaling_protocol_errors_total", reason="room_full") == 1
    assert len(node.admin("list_sessions")["sessions"]) == 2, "the refused join left nothing on Janus"
    for client in clients:
        await client.close()
