"""500 handles come and go in waves while media flows: counters never fall, series never pile up."""

from __future__ import annotations

import asyncio
import time

import pytest

from loadtest.bots.peers import SyntheticVideo, bind_ice_to, new_peer_connection, publish, subscribe
from sfu_stack.readiness import wait_until_async
from signaling.client import SignalingClient
from signaling.config import SETTINGS

from support import Samples, join_many, leave_all, scrape_samples, token, value, ws_url

pytestmark = pytest.mark.janus
WAVE = 500
WAVES = 2
MEDIA_SUBSCRIBERS = 2
SIGNALING_DEFAULTS = {s.name: s.default for s in SETTINGS}


def is_counter_sample(name: str) -> bool:
    return name.endswith(("_total", "_bucket", "_count", "_sum")) and not name.startswith("sfu_room_size")


class Watcher:
    """Scrapes the exporter in a loop and checks every pair of consecutive scrapes."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.scrapes = 0
        self.decreases: list[str] = []
        self.series: set[tuple] = set()
        self.max_handles = 0.0
        self.last: Samples = {}

    async def run(self, stop: asyncio.Event) -> None:
        previous: Samples | None = None
        while not stop.is_set():
            samples = await scrape_samples(self.url)
            self.scrapes += 1
            self.series |= samples.keys()
            self.max_handles = max(self.max_handles, value(samples, "sfu_active_handles"))
            if previous is not None:
                self.decreases += [f"{key}: {previous[key]} -> {v}" for key, v in samples.items()
                                   if is_counter_sample(key[0]) and key in previous and v < previous[key]]
            previous = self.last = samples
            await asyncio.sleep(0.2)


@pytest.mark.parametrize("media_source", ["events", "admin"])
async def test_handles_joining_and_leaving_in_waves_keep_counters_monotonic_and_series_bounded(
        lab_netns, monitored_nodes, signaling_server, media_source):
    (exporter,) = monitored_nodes(1, stats_period=1, JANUS_EXPORTER_MEDIA_SOURCE=media_source)
    # Signaling's production health timing (2 s per ping) instead of the suite's 0.5 s: back-to-back
    # admin-mode scrapes of 500 handles can delay a ping past 0.5 s, and a node marked unhealthy
    # leaves its participants' sessions for Janus to expire (60 s) instead of destroying them.
    server = await signaling_server([exporter.node], health_period=SIGNALING_DEFAULTS["health_period"],
                                    janus_timeout=SIGNALING_DEFAULTS["janus_timeout"])
    bind_ice_to(lab_netns.host_ip)
    url = ws_url(server)
    publisher = await SignalingClient.connect(url)
    pub_pc = new_peer_connection()
    watcher = Watcher(exporter.metrics_url)
    stop = asyncio.Event()
    watching = asyncio.create_task(watcher.run(stop))
    started = time.monotonic()
    try:
        await publisher.join("churn", token("churn"), display="pub")
        assert await publish(publisher, pub_pc, video=SyntheticVideo()) == "connected"
        for _ in range(WAVES):
            viewers = [await SignalingClient.connect(url) for _ in range(MEDIA_SUBSCRIBERS)]
            viewer_pcs = [new_peer_connection() for _ in viewers]
            for client, pc in zip(viewers, viewer_pcs, strict=True):
                joined = await client.join("churn", token("churn"), role="subscriber")
                assert (await subscribe(client, pc, await client.first_feed(joined)))[0] == "connected"
            lurkers = await join_many(url, "churn", WAVE, token)
            await wait_until_async(lambda: value(watcher.last, "janus_exporter_media_handles_tracked") >= 3,
                                   timeout=10, what="media of publisher and viewers seen")
            await wait_until_async(lambda: value(watcher.last, "sfu_active_handles") >= WAVE, timeout=10,
                                   what=f"a scrape sees the {WAVE} handles of the wave")
            await leave_all(lurkers)
            for pc in viewer_pcs:
                await pc.close()
            await leave_all(viewers)
        await wait_until_async(lambda: value(watcher.last, "sfu_active_handles") == 1, timeout=15,
                               what="only the publisher's handle left")
        await wait_until_async(lambda: value(watcher.last, "janus_exporter_media_handles_tracked") == 1,
                               timeout=20, what="gone handles retired from the ledger")
    finally:
        stop.set()
        await watching
        await pub_pc.close()
        await publisher.close()
    print(f"\n{media_source}: {watcher.scrapes} scrapes in {time.monotonic() - started:.1f} s, "
          f"max handles {watcher.max_handles:.0f}, {len(watcher.series)} series")
    assert watcher.max_handles >= WAVE
    assert watcher.decreases == []
    assert value(watcher.last, "sfu_bytes_total", direction="sent", media="video") > 0
    assert value(watcher.last, "janus_up") == 1
    # One fixed set of series whatever the number of handles seen (no per-handle or per-room label).
    assert len(watcher.series) == len(watcher.last), sorted(watcher.series - watcher.last.keys())
