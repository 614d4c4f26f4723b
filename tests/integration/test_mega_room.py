"""500 participants in one room (signaling only), and where new rooms go next to it."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from lab.labs.cardinality import allowed_label_values, cardinality_violations
from sfu_stack.readiness import wait_until_async
from signaling.client import SignalingClient

from support import (
    ADMIN_TOKEN,
    http,
    join_many,
    leave_all,
    sample,
    scrape,
    token,
    ws_url,
)

pytestmark = pytest.mark.janus
MEGA = 500


async def test_five_hundred_participants_join_one_room_and_leave_cleanly_with_bounded_labels(
        janus_nodes, signaling_server):
    (node,) = janus_nodes(1)
    server = await signaling_server([node])
    started = time.monotonic()
    clients = await join_many(ws_url(server), "mega", MEGA, token)
    print(f"\n{MEGA} joins in {time.monotonic() - started:.1f} s")
    assert sample(server.registry, "signaling_participants_active", region="local") == MEGA
    assert await asyncio.to_thread(node.count_handles) >= MEGA

    violations = cardinality_violations(await scrape(server.port), allowed_label_values([node.node_name], "local"))
    assert violations == []

    started = time.monotonic()
    await leave_all(clients)
    print(f"{MEGA} leaves in {time.monotonic() - started:.1f} s")
    assert sample(server.registry, "signaling_messages_total", msg_type="publisher_removed", direction="out") == 0
    assert sample(server.registry, "signaling_participants_active", region="local") == 0
    assert sample(server.registry, "signaling_rooms_active", region="local") == 0
    await wait_until_async(lambda: not node.admin("list_sessions")["sessions"], timeout=10,
                           what="Janus has no session left")


async def admin(server, method: str, path: str, body: dict | None = None) -> dict:
    status, reply = await http(f"http://127.0.0.1:{server.admin_port}{path}", method=method,
                               body=json.dumps(body).encode() if body is not None else None,
                               headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert status == 200, reply
    return json.loads(reply)


async def place_two_person_rooms(server, prefix: str, count: int) -> list[str]:
    """Create ``count`` rooms of two; return the node each landed on."""
    nodes, clients = [], []
    for index in range(count):
        room = f"{prefix}-{index}"
        clients += await join_many(ws_url(server), room, 2, token)
        nodes.append(server.hub.rooms[room].node)
    await leave_all(clients)
    return nodes


async def test_least_rooms_keeps_feeding_the_mega_room_node_and_least_participants_stops(
        janus_nodes, signaling_server):
    nodes = janus_nodes(4)
    server = await signaling_server(nodes, placement_policy="least_rooms")
    mega_clients: list[SignalingClient] = await join_many(ws_url(server), "mega", MEGA, token)
    hot = server.hub.rooms["mega"].node

    # Keep two-person rooms open while new ones arrive, as a busy platform would.
    under_least_rooms = await place_two_person_rooms(server, "small", 12)
    print(f"\nleast_rooms: mega-room on {hot}; new rooms went to {under_least_rooms}")
    assert under_least_rooms.count(hot) >= 2, "the incident's bug: the mega-room node keeps getting rooms"

    assert (await admin(server, "PUT", "/admin/placement", {"policy": "least_participants"}))["policy"] == \
        "least_participants"
    under_least_participants = await place_two_person_rooms(server, "after-fix", 12)
    print(f"least_participants: new rooms went to {under_least_participants}")
    assert hot not in under_least_participants
    assert sample(server.registry, "signaling_room_placements_total", node=hot, policy="least_rooms") >= 3
    assert sample(server.registry, "signaling_room_placements_total", node=hot, policy="least_participants") == 0
    await leave_all(mega_clients)
