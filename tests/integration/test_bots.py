"""The bots' receive path on a real Janus node: frames counted with and without decoding, NACKs from
injected loss, and every track ending when its bot closes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from lab.stack import Stack
from loadtest.bots.fleet import Fleet, VideoSettings
from loadtest.bots.media import skip_video_decoding
from loadtest.bots.metrics import BotMetrics
from loadtest.bots.peers import PacketLoss, bind_ice_to
from sfu_stack.readiness import wait_until_async
from signaling.tokens import mint

pytestmark = pytest.mark.janus


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = Stack(Path(tmp_path_factory.mktemp("bots")), node_count=1)
    running.start()
    assert running.netns is not None
    bind_ice_to(running.netns.host_ip)
    try:
        yield running
    finally:
        running.stop()


def frames(registry: CollectorRegistry, media: str) -> float:
    return registry.get_sample_value("bot_frames_received_total", {"media": media}) or 0.0


async def receive(stack: Stack, room: str, *, decode: bool, loss: float = 0.0) -> tuple[CollectorRegistry, list]:
    """A publisher and two subscribers in ``room``; returns the subscribers' registry once both media
    kinds have been counted for a while, and the drain tasks of their tracks."""
    skip_video_decoding(not decode)
    registry = CollectorRegistry()
    metrics = BotMetrics(registry)
    fleet = Fleet(stack.ws_url, lambda r, u: mint(stack.token_key, room=r, user=u), metrics)
    try:
        await fleet.publishers(room, 1, VideoSettings(width=160, height=120, fps=15))
        subscribers = await fleet.subscribers(room, 2, loss=(lambda: PacketLoss(loss, after=3.0)) if loss else None)
        await wait_until_async(lambda: frames(registry, "video") >= 60 and frames(registry, "audio") >= 100,
                               timeout=30, what="the subscribers to count video and audio frames")
        if loss:
            await wait_until_async(lambda: (registry.get_sample_value("bot_nacks_sent_total") or 0) > 0,
                                   timeout=30, what="the lossy subscribers to NACK")
        drains = [task for bot in subscribers for task in bot.tasks]
        for bot in subscribers:  # the peer connections close first: the end of stream must reach the tracks
            for pc in bot.pcs:
                await pc.close()
        await wait_until_async(lambda: all(task.done() for task in drains), timeout=10,
                               what="every track to end after its peer connection closed")
    finally:
        await fleet.close()
        skip_video_decoding(False)  # aiortc's own receivers again for the rest of this test process
    return registry, drains


def test_subscribers_that_skip_decoding_count_video_and_audio_frames_and_their_tracks_end_when_the_peer_closes(stack):
    registry, drains = asyncio.run(receive(stack, "counting", decode=False))
    assert frames(registry, "video") >= 60 and frames(registry, "audio") >= 100
    assert drains and not any(task.cancelled() for task in drains), "every track ended by itself"


def test_decoding_subscribers_count_decoded_frames_of_both_kinds(stack):
    registry, drains = asyncio.run(receive(stack, "decoding", decode=True))
    assert frames(registry, "video") >= 60 and frames(registry, "audio") >= 100
    assert drains and not any(task.cancelled() for task in drains)


def test_loss_on_a_subscriber_that_skips_decoding_still_sends_real_nacks(stack):
    registry, _ = asyncio.run(receive(stack, "lossy", decode=False, loss=0.1))
    assert registry.get_sample_value("bot_nacks_sent_total") > 0
    assert registry.get_sample_value("bot_packets_dropped_total", {"direction": "received"}) > 0


async def release_cancelled_half_way(stack: Stack) -> None:
    fleet = Fleet(stack.ws_url, lambda r, u: mint(stack.token_key, room=r, user=u), BotMetrics(CollectorRegistry()))
    try:
        bots = [*await fleet.publishers("cancelled", 1), *await fleet.subscribers("cancelled", 1)]
        releasing = asyncio.ensure_future(fleet.release(bots))
        for _ in range(3):  # let the release get inside the first peer connection's close
            await asyncio.sleep(0)
        assert not releasing.done()
        releasing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await releasing
    finally:
        await asyncio.wait_for(fleet.close(), timeout=20)


def test_a_release_cancelled_half_way_does_not_hang_the_fleets_close(stack):
    asyncio.run(release_cancelled_half_way(stack))
