"""The exporter sidecar against a real Janus carrying real aiortc media, with loss injected."""

from __future__ import annotations

import asyncio
import time

import pytest

from lab.peers import (
    PacketLoss,
    SyntheticVideo,
    bind_ice_to,
    drop_outgoing_rtp,
    new_peer_connection,
    publish,
    rtp_bytes,
    subscribe,
)
from lab.readiness import wait_until_async
from signaling.client import SignalingClient

from support import join_many, leave_all, sample, scrape_samples, token, value, ws_url

pytestmark = pytest.mark.janus


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
