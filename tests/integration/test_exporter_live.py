"""The exporter sidecar against a real Janus carrying real aiortc media, with loss injected."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest

from lab.components import JanusExporter, JanusNode
from loadtest.bots.peers import (
    PacketLoss,
    SyntheticVideo,
    bind_ice_to,
    drop_outgoing_rtp,
    new_peer_connection,
    publish,
    rtp_bytes,
    subscribe,
)
from sfu_stack.readiness import wait_until_async
from signaling.client import SignalingClient

from support import join_many, leave_all, sample, scrape_samples, token, value, ws_url

pytestmark = pytest.mark.janus
BYTES_IN_VIDEO = {"direction": "received", "media": "video"}


async def test_nacks_retransmissions_and_byte_rates_follow_the_media(lab_netns, monitored_nodes, signaling_server):
    (exporter,) = monitored_nodes(1, stats_period=1)
    server = await signaling_server([exporter.node])
    bind_ice_to(lab_netns.host_ip)
    publisher = await SignalingClient.connect(ws_url(server))
    subscribers = [await SignalingClient.connect(ws_url(server)) for _ in range(3)]
    pub_pc = new_peer_connection()
    sub_pcs = [new_peer_connection() for _ in subscribers]
    losses = [PacketLoss(0.10, after=4.0, seed=i) for i in range(len(subscribers))]
    try:
        await publisher.join("exporter-room", token("exporter-room"), display="pub")
        assert await publish(publisher, pub_pc, video=SyntheticVideo()) == "connected"
        # Uplink loss too, so that Janus NACKs the publisher and receives retransmissions.
        drop_outgoing_rtp(pub_pc, uplink := PacketLoss(0.05, after=4.0, seed=99))
        for client, pc, loss in zip(subscribers, sub_pcs, losses, strict=True):
            joined = await client.join("exporter-room", token("exporter-room"), role="subscriber")
            state, _ = await subscribe(client, pc, await client.first_feed(joined), loss=loss)
            assert state == "connected"
        await asyncio.sleep(6)  # warm-up of the loss (4 s) plus one stats period; media flows meanwhile

        before = await scrape_samples(exporter.metrics_url)
        t0 = time.monotonic()
        pub_bytes0 = await rtp_bytes(pub_pc, "outbound-rtp")
        sub_bytes0 = sum(loss.bytes_seen for loss in losses)
        await asyncio.sleep(15)
        after = await scrape_samples(exporter.metrics_url)
        elapsed = time.monotonic() - t0
        pub_rate = (await rtp_bytes(pub_pc, "outbound-rtp") - pub_bytes0) / elapsed
        sub_rate = (sum(loss.bytes_seen for loss in losses) - sub_bytes0) / elapsed

        def rate(name: str, **labels: str) -> float:
            return (value(after, name, **labels) - value(before, name, **labels)) / elapsed

        received = rate("sfu_bytes_total", direction="received", media="video")
        sent = rate("sfu_bytes_total", direction="sent", media="video")
        print(f"\npublisher {pub_rate:.0f} B/s, Janus received {received:.0f} B/s; subscribers {sub_rate:.0f} B/s,"
              f" Janus sent {sent:.0f} B/s; NACKs received"
              f" {rate('sfu_nacks_total', direction='received', media='video'):.1f}/s, sent"
              f" {rate('sfu_nacks_total', direction='sent', media='video'):.1f}/s, retransmissions"
              f" {rate('sfu_retransmissions_total', media='video'):.1f}/s; packets dropped by subscribers"
              f" {sum(x.dropped for x in losses)}, by the publisher {uplink.dropped}")
        assert value(after, "janus_up") == 1
        assert value(after, "sfu_peerconnections_active") == 4
        assert value(after, "sfu_rooms_active") == 1
        assert value(after, "sfu_room_participants_max") == 4
        assert rate("sfu_nacks_total", direction="received", media="video") > 0
        assert rate("sfu_nacks_total", direction="sent", media="video") > 0
        assert rate("sfu_retransmissions_total", media="video") > 0
        assert received == pytest.approx(pub_rate, rel=0.2)
        assert sent == pytest.approx(sub_rate, rel=0.2)
    finally:
        for pc in (pub_pc, *sub_pcs):
            await pc.close()
        for client in (publisher, *subscribers):
            await client.close()
    await wait_until_async(lambda: server.hub.rooms == {}, timeout=10, what="room gone")


async def test_least_handles_placement_reads_the_real_exporters(monitored_nodes, signaling_server):
    exporters = monitored_nodes(2)
    server = await signaling_server(
        [e.node for e in exporters], placement_policy="least_handles", handles_poll="0.3",
        sfu_exporters=",".join(f"{e.node.node_name}={e.metrics_url}" for e in exporters))
    busy = await join_many(ws_url(server), "busy", 20, token)
    try:
        busy_node = server.hub.rooms["busy"].node
        await wait_until_async(lambda: server.hub.handles(busy_node) == 20, timeout=10,
                               what="the poller reads 20 handles from the busy node's exporter")
        quiet = await join_many(ws_url(server), "quiet", 1, token)
        assert server.hub.rooms["quiet"].node != busy_node
        assert sample(server.registry, "signaling_room_placements_total", node=server.hub.rooms["quiet"].node,
                      policy="least_handles") == 1
        await leave_all(quiet)
    finally:
        await leave_all(busy)


def janus_received_video_bytes(node: JanusNode) -> int:
    """What Janus itself has counted so far (Admin ``handle_info``): RTP bytes in on every video stream."""
    total = 0
    for session in node.admin("list_sessions")["sessions"]:
        for handle in node.admin("list_handles", session_id=session).get("handles", []):
            info = node.admin("handle_info", session_id=session, handle_id=handle)["info"]
            total += sum(stream["stats"]["in"]["bytes"] for stream in info.get("webrtc", {}).get("media", {}).values()
                         if stream.get("type") == "video")
    return total


async def exporter_video_bytes(exporter: JanusExporter) -> float:
    return value(await scrape_samples(exporter.metrics_url), "sfu_bytes_total", **BYTES_IN_VIDEO)


async def _grew_past(exporter: JanusExporter, floor: float) -> bool:
    return await exporter_video_bytes(exporter) > floor


@contextlib.asynccontextmanager
async def one_call(lab_netns, server, room: str) -> AsyncIterator[None]:
    """A publisher sending video to one subscriber through ``server``; both closed on the way out."""
    bind_ice_to(lab_netns.host_ip)
    publisher, viewer = await SignalingClient.connect(ws_url(server)), await SignalingClient.connect(ws_url(server))
    pub_pc, sub_pc = new_peer_connection(), new_peer_connection()
    try:
        await publisher.join(room, token(room), display="pub")
        assert await publish(publisher, pub_pc, video=SyntheticVideo()) == "connected"
        joined = await viewer.join(room, token(room), role="subscriber")
        assert (await subscribe(viewer, sub_pc, await viewer.first_feed(joined)))[0] == "connected"
        yield
    finally:
        for pc in (pub_pc, sub_pc):
            await pc.close()
        for client in (publisher, viewer):
            await client.close()


@pytest.mark.parametrize("media_source", ["events", "admin"])
async def test_a_restarted_exporter_counts_from_its_start_not_the_calls_history(
        lab_netns, monitored_nodes, signaling_server, media_source):
    (exporter,) = monitored_nodes(1, stats_period=1, JANUS_EXPORTER_MEDIA_SOURCE=media_source)
    node = exporter.node
    server = await signaling_server([node])
    async with one_call(lab_netns, server, "restarted"):
        await wait_until_async(lambda: _grew_past(exporter, 200_000), timeout=20, what="200 kB of video counted")
        await asyncio.to_thread(exporter.stop)  # off the event loop: the media keeps flowing
        before_restart = await asyncio.to_thread(janus_received_video_bytes, node)
        await asyncio.to_thread(exporter.start_and_wait)
        await wait_until_async(lambda: _grew_past(exporter, 0), timeout=10,
                               what="the restarted exporter counts video again")
        counted = await exporter_video_bytes(exporter)
        since_restart = await asyncio.to_thread(janus_received_video_bytes, node) - before_restart
    print(f"\n{media_source}: restarted exporter: {counted:.0f} video bytes in; Janus received {since_restart}"
          f" since the restart and {before_restart} before it")
    # Counting the call's history would add the bytes before the restart: rate() would read a burst.
    assert 0 < counted <= since_restart
