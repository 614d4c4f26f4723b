"""What a stranger may hold, on a real server: the join deadline, the connection caps, failed-join throttling.

Clients come from different loopback addresses (127.0.0.x) so the per-source limits see distinct
sources, as they would from distinct machines. In every test a participant joined to another room
(from its own address) keeps pinging, and each of its pings must be answered promptly throughout.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest
import websockets
from websockets.exceptions import InvalidStatus

from sfu_stack.readiness import wait_until_async
from signaling.client import SignalingClient
from signaling.limits import JOIN_TIMEOUT_CLOSE_CODE
from signaling.server import REFUSED_GRACE

from support import http, sample, token, ws_url

pytestmark = pytest.mark.janus
BYSTANDER_ADDRESS = "127.0.0.9"


async def connect(server, address: str) -> SignalingClient:
    return await SignalingClient.connect(ws_url(server), local_addr=(address, 0))


def errors(server, reason: str) -> float:
    return sample(server.registry, "signaling_protocol_errors_total", reason=reason)


@contextlib.asynccontextmanager
async def bystander(server) -> AsyncIterator[list[float]]:
    """A participant in room 'calm' pinging every 50 ms, and once more at the end; yields the round trips.
    On exit: every ping was answered, none slower than 1 s."""
    client = await connect(server, BYSTANDER_ADDRESS)
    assert (await client.join("calm", token("calm"), role="subscriber"))["type"] == "joined"
    rtts: list[float] = []
    stop = asyncio.Event()

    async def ping() -> None:
        while not stop.is_set():
            started = time.monotonic()
            reply = await client.request({"type": "ping"}, "pong", timeout=5)
            assert reply["type"] == "pong", reply
            rtts.append(time.monotonic() - started)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.05)

    task = asyncio.create_task(ping())
    try:
        yield rtts
    finally:
        stop.set()
        await task  # raises if a ping went unanswered or came back as an error
        started = time.monotonic()  # and one more after everything the test did
        assert (await client.request({"type": "ping"}, "pong", timeout=5))["type"] == "pong"
        rtts.append(time.monotonic() - started)
        await client.close()
    assert rtts and max(rtts) < 1.0, f"bystander: {len(rtts)} pings, slowest {max(rtts):.3f} s"
    print(f"bystander: {len(rtts)} pongs, slowest {max(rtts) * 1000:.1f} ms")


async def closed_code(client: SignalingClient, timeout: float) -> int | None:
    async with asyncio.timeout(timeout):
        await client.ws.wait_closed()
    return client.ws.close_code


async def test_a_connection_that_does_not_join_is_closed_with_4408_at_the_deadline_and_counted(
        janus_nodes, signaling_server):
    server = await signaling_server(janus_nodes(1), join_timeout="2")
    async with bystander(server):
        opened = time.monotonic()
        idle = await connect(server, "127.0.0.2")
        joined = await connect(server, "127.0.0.2")
        assert (await joined.join("r1", token("r1"), role="subscriber"))["type"] == "joined"
        retrying = await connect(server, "127.0.0.3")
        await asyncio.sleep(1.2)  # the scenario's own timeline: a refused join 1.2 s in restarts its 2 s
        assert (await retrying.join("r1", "not-a-jwt"))["reason"] == "malformed"

        assert await closed_code(idle, 5) == JOIN_TIMEOUT_CLOSE_CODE
        waited = time.monotonic() - opened
        assert 1.9 <= waited < 3.0, waited
        assert "join_timeout" in (idle.ws.close_reason or "")
        assert errors(server, "join_timeout") == 1
        assert (await retrying.request({"type": "ping"}, "pong"))["type"] == "pong", "its refused join re-armed it"

        assert await closed_code(retrying, 5) == JOIN_TIMEOUT_CLOSE_CODE
        assert time.monotonic() - opened >= 3.1, "closed 2 s after its refused join, not after the handshake"
        assert errors(server, "join_timeout") == 2
        assert (await joined.request({"type": "ping"}, "pong"))["type"] == "pong", "a joined one stays"
        await joined.close()
    print(f"idle connection closed {waited:.2f} s after it opened (join timeout 2 s)")


async def refused_status(server, address: str) -> tuple[int, bytes]:
    with pytest.raises(InvalidStatus) as refused:
        await connect(server, address)
    response = refused.value.response
    assert response.headers["Retry-After"]
    return response.status_code, response.body


async def test_connection_caps_refuse_at_the_handshake_with_429_and_503_and_free_their_slot_on_close(
        janus_nodes, signaling_server):
    server = await signaling_server(janus_nodes(1), max_connections="6", max_connections_per_address="3",
                                    join_timeout="60")
    async with bystander(server):
        clients = [await connect(server, "127.0.0.2") for _ in range(3)]
        status, body = await refused_status(server, "127.0.0.2")
        assert status == 429 and body.startswith(b"address_full"), body
        assert errors(server, "address_full") == 1

        clients += [await connect(server, "127.0.0.3"), await connect(server, "127.0.0.4")]  # 6 with the bystander
        status, body = await refused_status(server, "127.0.0.5")
        assert status == 503 and body.startswith(b"server_full"), body
        assert errors(server, "server_full") == 1
        status, _ = await http(f"http://127.0.0.1:{server.port}/metrics")
        assert status == 200, "a full server still answers its scrapes"
        assert errors(server, "server_full") == 1, "and does not count them as refused"

        await clients.pop(0).close()
        await wait_until_async(lambda: server.caps.by_source.get("127.0.0.2") == 2, timeout=5,
                               what="the closed connection's slot is free")
        clients.append(await connect(server, "127.0.0.2"))
        assert (await clients[-1].join("r1", token("r1"), role="subscriber"))["type"] == "joined"
        status, _ = await refused_status(server, "127.0.0.2")
        assert status == 429
        for client in clients:
            await client.close()
    await wait_until_async(lambda: server.caps.open == 0, timeout=5, what="every slot is free")
    assert server.caps.by_source == {}


async def test_failed_joins_throttle_their_source_until_the_hold_ends_whatever_it_sends_meanwhile(
        janus_nodes, signaling_server):
    server = await signaling_server(janus_nodes(1), join_failure_limit="3", join_failure_window="60",
                                    join_throttle="2")
    async with bystander(server):
        guesser = await connect(server, "127.0.0.2")
        for bad in ("not-a-jwt", token("elsewhere"), token("r1", ttl_seconds=-10)):
            reply = await guesser.join("r1", bad, role="subscriber")
            assert reply["code"] == "unauthorized" and reply["reason"] != "throttled", reply
        throttled_at = time.monotonic()
        reply = await guesser.join("r1", token("r1"), role="subscriber")
        assert reply["code"] == "unauthorized" and reply["reason"] == "throttled", "even a good token"
        assert "retry in" in reply["message"]
        neighbour = await connect(server, "127.0.0.3")
        assert (await neighbour.join("r1", token("r1"), role="subscriber"))["type"] == "joined", \
            "another source is not throttled"

        sent = 0  # keep trying during the hold: these do not extend it
        while server.join_throttle.retry_after("127.0.0.2") > 0:
            assert time.monotonic() - throttled_at < 4, "the hold did not end"
            assert (await guesser.join("r1", "not-a-jwt"))["reason"] == "throttled"
            sent += 1
            await asyncio.sleep(0.1)
        released = time.monotonic() - throttled_at
        assert 1.8 <= released < 2.5, released
        assert sample(server.registry, "signaling_auth_failures_total", reason="throttled") == 1 + sent
        assert (await guesser.join("r1", token("r1"), role="subscriber"))["type"] == "joined", "released"
        for client in (guesser, neighbour):
            await client.close()
    print(f"throttled after 3 refused joins; released after {released:.2f} s (hold 2 s) despite {sent} more")


async def test_a_flood_of_unjoined_connections_from_one_source_is_bounded_and_harms_no_room(
        janus_nodes, signaling_server):
    server = await signaling_server(janus_nodes(1), max_connections_per_address="50", join_timeout="4")
    async with bystander(server):
        results = await asyncio.gather(*(connect(server, "127.0.0.2") for _ in range(200)),
                                       return_exceptions=True)
        held = [r for r in results if isinstance(r, SignalingClient)]
        refused = [r for r in results if isinstance(r, InvalidStatus)]
        assert len(held) == 50 and len(refused) == 150, (len(held), len(refused), set(map(type, results)))
        assert errors(server, "address_full") == 150
        codes = await asyncio.gather(*(closed_code(c, 10) for c in held))
        assert set(codes) == {JOIN_TIMEOUT_CLOSE_CODE}
        assert errors(server, "join_timeout") == 50
    await wait_until_async(lambda: server.caps.open == 0, timeout=5, what="the flood's slots are free")
    with contextlib.suppress(websockets.ConnectionClosed):
        for client in held:
            await client.close()


async def test_half_open_sockets_hold_cap_slots_and_one_over_the_cap_is_dropped_after_the_grace(
        janus_nodes, signaling_server):
    server = await signaling_server(janus_nodes(1), max_connections_per_address="3")
    async with bystander(server):
        parked = [await asyncio.open_connection("127.0.0.1", server.port, local_addr=("127.0.0.2", 0))
                  for _ in range(3)]  # TCP only: no upgrade request
        await wait_until_async(lambda: server.caps.by_source.get("127.0.0.2") == 3, timeout=5,
                               what="three half-open sockets counted")
        status, _ = await refused_status(server, "127.0.0.2")
        assert status == 429, "half-open sockets hold the address's slots"
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port, local_addr=("127.0.0.2", 0))
        opened = time.monotonic()
        with contextlib.suppress(ConnectionResetError):
            assert await asyncio.wait_for(reader.read(), 5) == b""
        dropped = time.monotonic() - opened
        assert REFUSED_GRACE * 0.9 <= dropped < REFUSED_GRACE + 1, dropped
        assert errors(server, "address_full") == 2
        writer.close()
        for _, parked_writer in parked:
            parked_writer.close()
        await wait_until_async(lambda: "127.0.0.2" not in server.caps.by_source, timeout=5,
                               what="closed half-open sockets free their slots")
        assert (await connect(server, "127.0.0.2")).ws.state.name == "OPEN"
    print(f"a half-open socket over the cap was dropped after {dropped:.2f} s")
