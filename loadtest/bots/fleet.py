"""Many bots in one process and one event loop, through the signaling service.

A ``Fleet`` joins publishers (synthetic video and a tone), subscribers (one PeerConnection per
feed, video not decoded unless asked, optional loss injection) and lurkers (signaling only: one
Janus session and handle each, like the 500-person room's silent majority). Every bot it made is
closed by ``close``, whatever failed; callers put it in ``finally``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCPeerConnection

from loadtest.bots.media import ToneAudio, count_frames_into, drain
from loadtest.bots.metrics import BotMetrics
from loadtest.bots.peers import PacketLoss, SyntheticVideo, drop_incoming_rtp, new_peer_connection, publish, wait_ice
from signaling.client import SignalingClient

TokenFor = Callable[[str, str], str]  # (room, user) -> JWT


@dataclass
class VideoSettings:
    width: int = 320
    height: int = 240
    fps: int = 15
    audio: bool = True


@dataclass
class Bot:
    role: str
    room: str
    client: SignalingClient
    pcs: list[RTCPeerConnection] = field(default_factory=list)
    feed: int | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for pc in self.pcs:
            await pc.close()
        await self.client.close()


class Fleet:
    """Bots of one process against one signaling service (``url``), ICE on ``ice_address``'s machine."""

    def __init__(self, url: str, token_for: TokenFor, metrics: BotMetrics, *, concurrency: int = 20) -> None:
        self.url = url
        self.token_for = token_for
        self.metrics = metrics
        count_frames_into(metrics)
        self.bots: list[Bot] = []
        self._gate = asyncio.Semaphore(concurrency)
        self._serial = 0

    def _user(self, role: str) -> str:
        self._serial += 1
        return f"{role}-{self._serial}"

    async def _join(self, room: str, role: str) -> tuple[Bot, dict[str, Any]]:
        client = await SignalingClient.connect(self.url, max_size=2**20)
        bot = Bot(role, room, client)
        self.bots.append(bot)
        started = time.monotonic()
        joined = await client.join(room, self.token_for(room, self._user(role)),
                                   role="publisher" if role == "publisher" else "subscriber", display=role)
        if joined.get("type") != "joined":
            raise RuntimeError(f"{role} could not join {room}: {joined}")
        self.metrics.join.observe(time.monotonic() - started)
        bot.feed = joined.get("feed")
        return bot, joined

    async def _one(self, role: str, work: Callable[[], Any]) -> Any:
        async with self._gate:
            try:
                result = await work()
            except Exception:
                self.metrics.failures.labels(role).inc()
                raise
            self.metrics.peers.labels(role).inc()
            return result

    async def publishers(self, room: str, count: int, video: VideoSettings | None = None) -> list[Bot]:
        settings = video or VideoSettings()

        async def one() -> Bot:
            bot, _ = await self._join(room, "publisher")
            pc = new_peer_connection()
            bot.pcs.append(pc)
            started = time.monotonic()
            state = await publish(bot.client, pc, video=SyntheticVideo(settings.width, settings.height, settings.fps),
                                  audio=ToneAudio() if settings.audio else None)
            if state != "connected":
                raise RuntimeError(f"publisher ICE {state}")
            self.metrics.ice.labels("publisher").observe(time.monotonic() - started)
            return bot

        return list(await asyncio.gather(*(self._one("publisher", one) for _ in range(count))))

    async def subscribers(self, room: str, count: int, *, feeds: int = 1,
                          loss: Callable[[], PacketLoss] | None = None, node: str | None = None) -> list[Bot]:
        """``count`` subscribers, each receiving the first ``feeds`` publishers of ``room`` (on SFU ``node``,
        when known: it labels the retransmissions they receive)."""

        async def one() -> Bot:
            bot, joined = await self._join(room, "subscriber")
            known = [p["feed"] for p in joined.get("publishers", [])]
            while len(known) < feeds:
                added = await bot.client.receive("publisher_added", timeout=15)
                known += [p["feed"] for p in added["publishers"]]
            for feed in known[:feeds]:
                await self._subscribe(bot, feed, loss() if loss else None, node)
            return bot

        return list(await asyncio.gather(*(self._one("subscriber", one) for _ in range(count))))

    async def _subscribe(self, bot: Bot, feed: int, loss: PacketLoss | None, node: str | None = None) -> None:
        pc = new_peer_connection()
        bot.pcs.append(pc)
        started = time.monotonic()

        @pc.on("track")
        def _on_track(track: Any) -> None:
            bot.tasks.append(asyncio.ensure_future(drain(track, track.kind, self.metrics)))

        offer = await bot.client.request({"type": "subscribe", "feed": feed}, "offer")
        if offer["type"] == "error":
            raise RuntimeError(f"subscribe refused: {offer}")
        from aiortc import RTCSessionDescription

        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer["sdp"], type="offer"))
        for receiver in pc.getReceivers():
            receiver.lab_node = node  # type: ignore[attr-defined]  # read by metrics.count_feedback
        if loss is not None:
            loss.on_drop = self.metrics.dropped.labels("received").inc
            drop_incoming_rtp(pc, loss)
        await pc.setLocalDescription(await pc.createAnswer())
        reply = await bot.client.request({"type": "answer", "feed": feed, "sdp": pc.localDescription.sdp},
                                         "subscribed")
        if reply["type"] == "error":
            raise RuntimeError(f"answer refused: {reply}")
        state = await wait_ice(pc, 15)
        await bot.client.send({"type": "ice_state", "feed": feed, "state": state})
        if state != "connected":
            raise RuntimeError(f"subscriber ICE {state}")
        self.metrics.ice.labels("subscriber").observe(time.monotonic() - started)

    async def lurkers(self, room: str, count: int) -> list[Bot]:
        async def one() -> Bot:
            bot, _ = await self._join(room, "lurker")
            return bot

        return list(await asyncio.gather(*(self._one("lurker", one) for _ in range(count))))

    async def release(self, bots: Iterable[Bot]) -> None:
        """Close ``bots`` (they leave their rooms) and forget them."""
        gone = list(bots)
        for bot in gone:
            # Shielded: aiortc's RTCPeerConnection.close() interrupted half-way never completes its
            # "closed" future, and every later close() of that peer waits on it for ever.
            await asyncio.shield(bot.close())
            if bot in self.bots:
                self.bots.remove(bot)
                self.metrics.peers.labels(bot.role).dec()

    async def close(self) -> None:
        await self.release(list(self.bots))
