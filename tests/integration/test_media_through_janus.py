"""A real aiortc publisher and subscriber meet in one room on a real Janus, through the service."""

from __future__ import annotations

import pytest

from loadtest.bots.peers import SyntheticVideo, bind_ice_to, new_peer_connection, publish, subscribe
from sfu_stack.readiness import wait_until_async
from signaling.client import SignalingClient

from support import sample, token, ws_url

pytestmark = pytest.mark.janus


async def test_subscriber_receives_video_frames_from_a_publisher_and_metrics_show_the_session(
        lab_netns, janus_nodes, signaling_server):
    (node,) = janus_nodes(1)
    server = await signaling_server([node])
    bind_ice_to(lab_netns.host_ip)
    publisher = await SignalingClient.connect(ws_url(server))
    subscriber = await SignalingClient.connect(ws_url(server))
    pub_pc, sub_pc = new_peer_connection(), new_peer_connection()
    try:
        joined = await publisher.join("media-room", token("media-room"), display="alice")
        assert joined["type"] == "joined", joined
        assert joined["publishers"] == []
        assert await publish(publisher, pub_pc, video=SyntheticVideo()) == "connected"
        # Trickle is relayed too (aiortc puts its candidates in the SDP, so send one by hand, then the end).
        host = lab_netns.host_ip
        for candidate in ({"candidate": f"candidate:9 1 udp 2130706431 {host} 9 typ host", "sdpMid": "0",
                           "sdpMLineIndex": 0}, None):
            await publisher.send({"type": "candidate", "candidate": candidate})
        assert (await publisher.request({"type": "ping"}, "pong"))["type"] == "pong"
        assert [e for e in publisher.events if e["type"] == "error"] == []
        assert sample(server.registry, "signaling_janus_request_duration_seconds_count", node=node.node_name,
                      request="trickle") == 2

        joined = await subscriber.join("media-room", token("media-room"), role="subscriber")
        assert [p["feed"] for p in joined["publishers"]] == [joined_feed := joined["publishers"][0]["feed"]]
        state, frames = await subscribe(subscriber, sub_pc, joined_feed)
        assert state == "connected"
        await wait_until_async(lambda: frames.frames >= 20, timeout=20, what="20 video frames received")
        assert frames.last_size == (320, 240)

        registry = server.registry
        assert sample(registry, "signaling_websockets_active", region="local") == 2
        assert sample(registry, "signaling_rooms_active", region="local") == 1
        assert sample(registry, "signaling_participants_active", region="local") == 2
        for msg_type, direction in [("join", "in"), ("joined", "out"), ("publish", "in"), ("answer", "out"),
                                    ("subscribe", "in"), ("offer", "out"), ("answer", "in"),
                                    ("ice_state", "in")]:
            assert sample(registry, "signaling_messages_total", msg_type=msg_type, direction=direction) >= 1, \
                (msg_type, direction)
        assert sample(registry, "signaling_ice_negotiation_seconds_count", status="connected") == 2
        assert sample(registry, "signaling_join_duration_seconds_count") == 2
        assert sample(registry, "signaling_room_placements_total", node=node.node_name,
                      policy="least_participants") == 1
    finally:
        await pub_pc.close()
        await sub_pc.close()
        await publisher.close()
        await subscriber.close()
    await wait_until_async(lambda: sample(server.registry, "signaling_rooms_active", region="local") == 0,
                           timeout=10, what="room cleaned up after both disconnect")
