"""Real WebRTC peers (aiortc) that talk to Janus through the signaling service.

``bind_ice_to(address)`` makes aiortc gather host candidates on one address only (the lab's
veth end): aioice would otherwise offer every address of the machine. Peers never contact a
STUN server (``RTCConfiguration(iceServers=[])``).
"""

from __future__ import annotations

import asyncio
import fractions
import time
from typing import Any

import aioice.ice
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription, VideoStreamTrack
from aiortc.mediastreams import MediaStreamError
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
                  timeout: float = 15.0) -> str:
    """Publish ``video`` on a joined client; report the ICE outcome to the service and return it."""
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
                    timeout: float = 15.0) -> tuple[str, FrameCounter]:
    """Subscribe to ``feed``; count its video frames; report the ICE outcome; return both."""
    counter = FrameCounter()

    @pc.on("track")
    def _on_track(track: Any) -> None:
        if track.kind == "video":
            counter.task = asyncio.ensure_future(counter.consume(track))

    offer = await client.request({"type": "subscribe", "feed": feed}, "offer")
    if offer["type"] == "error":
        raise RuntimeError(f"subscribe refused: {offer}")
    await pc.setRemoteDescription(RTCSessionDescription(sdp=offer["sdp"], type="offer"))
    await pc.setLocalDescription(await pc.createAnswer())
    reply = await client.request({"type": "answer", "feed": feed, "sdp": pc.localDescription.sdp}, "subscribed")
    if reply["type"] == "error":
        raise RuntimeError(f"answer refused: {reply}")
    state = await wait_ice(pc, timeout)
    await client.send({"type": "ice_state", "feed": feed, "state": state})
    return state, counter
