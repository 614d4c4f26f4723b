"""Real WebRTC peers (aiortc) that talk to Janus through the signaling service.

``bind_ice_to(address)`` makes aiortc gather host candidates on one address only (the lab's
veth end): aioice would otherwise offer every address of the machine. Peers never contact a
STUN server (``RTCConfiguration(iceServers=[])``).
"""

from __future__ import annotations

import asyncio
import fractions
import random
import time
from collections.abc import Callable
from typing import Any

import aioice.ice
import numpy as np
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription, VideoStreamTrack
from aiortc.mediastreams import MediaStreamError
from aiortc.rtp import is_rtcp
from av import VideoFrame

from signaling.client import SignalingClient


def bind_ice_to(address: str) -> None:
    """Gather ICE host candidates on ``address`` only, in this process."""
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: [address]  # type: ignore[assignment]


def new_peer_connection() -> RTCPeerConnection:
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


class SyntheticVideo(VideoStreamTrack):
    """A moving gradient, ``width``×``height`` at ``fps`` (cheap to make, not trivially compressible)."""

    def __init__(self, width: int = 320, height: int = 240, fps: int = 15) -> None:
        super().__init__()
        self.width, self.height, self.fps = width, height, fps
        self._count = 0
        self._start: float | None = None
        ramp = np.arange(width, dtype=np.uint8)
        self._base = np.broadcast_to(ramp, (height, width))

    async def recv(self) -> VideoFrame:
        if self._start is None:
            self._start = time.monotonic()
        target = self._start + self._count / self.fps
        await asyncio.sleep(max(0.0, target - time.monotonic()))
        shifted = np.roll(self._base, self._count * 4, axis=1)
        image = np.stack([shifted, np.flipud(shifted), np.full_like(shifted, self._count % 256)], axis=2)
        frame = VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame.pts = self._count
        frame.time_base = fractions.Fraction(1, self.fps)
        self._count += 1
        return frame


class PacketLoss:
    """Drops a ``fraction`` of RTP packets, starting ``after`` seconds from ``start()``.

    Janus keeps no retransmission buffer until a receiver report gives it an RTT, so loss before a
    warm-up of a few seconds stalls the video instead of causing NACKs and retransmissions.
    """

    def __init__(self, fraction: float, *, after: float = 5.0, seed: int | None = None,
                 on_drop: Callable[[], None] | None = None) -> None:
        if not 0 <= fraction < 1:
            raise ValueError("fraction must be in [0, 1)")
        self.fraction, self.after, self.on_drop = fraction, after, on_drop
        self._random = random.Random(seed)
        self._from: float | None = None
        self.seen = self.dropped = self.bytes_seen = 0

    def start(self) -> None:
        self._from = time.monotonic() + self.after

    def drop(self, size: int = 0) -> bool:
        self.seen += 1
        self.bytes_seen += size
        if self._from is None or time.monotonic() < self._from or self._random.random() >= self.fraction:
            return False
        self.dropped += 1
        if self.on_drop is not None:
            self.on_drop()
        return True


def drop_incoming_rtp(pc: RTCPeerConnection, loss: PacketLoss) -> None:
    """Make ``pc`` lose decrypted incoming RTP as if the network had (its receivers then NACK)."""
    for transport in {r.transport for r in pc.getReceivers() if r.transport is not None}:
        handle = transport._handle_rtp_data

        async def lossy(data: bytes, arrival_time_ms: int, _handle: Any = handle) -> None:
            if not loss.drop(len(data)):
                await _handle(data, arrival_time_ms)

        transport._handle_rtp_data = lossy  # type: ignore[method-assign]
    loss.start()


def drop_outgoing_rtp(pc: RTCPeerConnection, loss: PacketLoss) -> None:
    """Make ``pc`` lose outgoing RTP (not RTCP) after keeping it for retransmission (Janus then NACKs)."""
    for transport in {s.transport for s in pc.getSenders() if s.transport is not None}:
        send = transport._send_rtp

        async def lossy(data: bytes, _send: Any = send) -> None:
            if is_rtcp(data) or not loss.drop(len(data)):
                await _send(data)

        transport._send_rtp = lossy  # type: ignore[method-assign]
    loss.start()


async def rtp_bytes(pc: RTCPeerConnection, kind: str) -> int:
    """Bytes of RTP ``pc`` has sent (``kind='outbound-rtp'``) or received (``'inbound-rtp'``)."""
    report = await pc.getStats()
    return sum(getattr(s, "bytesSent", 0) + getattr(s, "bytesReceived", 0) for s in report.values()
               if s.type == kind)


async def wait_ice(pc: RTCPeerConnection, timeout: float) -> str:
    """Wait until ICE is ``completed``/``connected`` or ``failed``; return the state reached."""
    done = asyncio.Event()

    @pc.on("iceconnectionstatechange")
    def _changed() -> None:
        if pc.iceConnectionState in ("completed", "connected", "failed", "closed"):
            done.set()

    if pc.iceConnectionState not in ("completed", "connected", "failed", "closed"):
        try:
            await asyncio.wait_for(done.wait(), timeout)
        except TimeoutError:
            return "failed"
    return "failed" if pc.iceConnectionState in ("failed", "closed") else "connected"


async def publish(client: SignalingClient, pc: RTCPeerConnection, *, video: VideoStreamTrack,
                  audio: MediaStreamTrack | None = None, timeout: float = 15.0) -> str:
    """Publish ``video`` (and ``audio``) on a joined client; report the ICE outcome to the service and return it."""
    if audio is not None:
        pc.addTrack(audio)
    pc.addTrack(video)
    await pc.setLocalDescription(await pc.createOffer())
    answer = await client.request({"type": "publish", "sdp": pc.localDescription.sdp}, "answer")
    if answer["type"] == "error":
        raise RuntimeError(f"publish refused: {answer}")
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
    state = await wait_ice(pc, timeout)
    await client.send({"type": "ice_state", "state": state})
    return state


class FrameCounter:
    """Consumes a received video track and counts decoded frames."""

    def __init__(self) -> None:
        self.frames = 0
        self.last_size: tuple[int, int] | None = None
        self.task: asyncio.Task[None] | None = None

    async def consume(self, track: Any) -> None:
        try:
            while True:
                frame = await track.recv()
                self.frames += 1
                self.last_size = (frame.width, frame.height)
        except MediaStreamError:
            return


async def subscribe(client: SignalingClient, pc: RTCPeerConnection, feed: int, *,
                    timeout: float = 15.0, loss: PacketLoss | None = None,
                    on_track: Callable[[Any], None] | None = None) -> tuple[str, FrameCounter]:
    """Subscribe to ``feed``; count its video frames; report the ICE outcome; return both.

    With ``loss``, incoming RTP is dropped as ``loss`` says (after its warm-up). With ``on_track``,
    every received track goes to it instead of the frame counter.
    """
    counter = FrameCounter()

    @pc.on("track")
    def _on_track(track: Any) -> None:
        if on_track is not None:
            on_track(track)
        elif track.kind == "video":
            counter.task = asyncio.ensure_future(counter.consume(track))

    offer = await client.request({"type": "subscribe", "feed": feed}, "offer")
    if offer["type"] == "error":
        raise RuntimeError(f"subscribe refused: {offer}")
    await pc.setRemoteDescription(RTCSessionDescription(sdp=offer["sdp"], type="offer"))
    if loss is not None:
        drop_incoming_rtp(pc, loss)
    await pc.setLocalDescription(await pc.createAnswer())
    reply = await client.request({"type": "answer", "feed": feed, "sdp": pc.localDescription.sdp}, "subscribed")
    if reply["type"] == "error":
        raise RuntimeError(f"answer refused: {reply}")
    state = await wait_ice(pc, timeout)
    await client.send({"type": "ice_state", "feed": feed, "state": state})
    return state, counter
