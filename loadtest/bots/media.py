"""What the bots send and how they receive cheaply.

``ToneAudio`` is a 440 Hz tone (Opus does not compress it to nothing, unlike silence).
``skip_video_decoding()`` makes receivers created afterwards in this process count encoded frames
(into ``count_frames_into``'s metrics) instead of decoding them: the jitter buffer still
reassembles frames and asks for retransmissions and keyframes (so NACKs and PLIs are real), but no
CPU goes to decoding, frames are counted on the event loop as the jitter buffer completes them (no
decoder thread per track: with a hundred tracks, handing each frame to its own thread cost more GIL
switching than the counting), and no receive-side bandwidth estimate is computed (REMB: Janus's
VideoRoom forwards at the publisher's rate whatever its subscribers estimate). ``set_video_bitrate``
sets the VP8 encoder's starting bitrate. ``drain`` reads a track until it ends, counting frames
and freezes.
"""

from __future__ import annotations

import asyncio
import fractions
import math
import queue
import threading
import time
from typing import Any

import numpy as np
from aiortc import MediaStreamTrack, rtcrtpreceiver
from aiortc.codecs import vpx
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame

from loadtest.bots.metrics import FREEZE_SECONDS, BotMetrics

SAMPLE_RATE = 48000
PTIME = 0.02


class ToneAudio(MediaStreamTrack):
    """A mono 440 Hz tone in 20 ms frames."""

    kind = "audio"

    def __init__(self, frequency: float = 440.0) -> None:
        super().__init__()
        self._samples = int(SAMPLE_RATE * PTIME)
        self._phase = 2 * math.pi * frequency / SAMPLE_RATE
        self._count = 0
        self._start: float | None = None

    async def recv(self) -> AudioFrame:
        if self._start is None:
            self._start = time.monotonic()
        await asyncio.sleep(max(0.0, self._start + self._count * PTIME - time.monotonic()))
        t = np.arange(self._count * self._samples, (self._count + 1) * self._samples)
        data = (np.sin(t * self._phase) * 8000).astype(np.int16).reshape(1, -1)
        frame = AudioFrame.from_ndarray(data, format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self._count * self._samples
        frame.time_base = fractions.Fraction(1, SAMPLE_RATE)
        self._count += 1
        return frame


_frame_metrics: BotMetrics | None = None


def count_frames_into(metrics: BotMetrics) -> None:
    """Where non-decoding receivers of this process count their frames and freezes."""
    global _frame_metrics
    _frame_metrics = metrics


class _CountingQueue:
    """Stands in for a receiver's decoder queue: counts each complete encoded frame where the jitter
    buffer hands it over (on the event loop) and passes only the end of the stream to the track."""

    def __init__(self) -> None:
        self.media = "video"
        self.track_queue: asyncio.Queue | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.last: float | None = None

    def put(self, item: Any) -> None:
        if item is None:
            if self.loop is not None and self.track_queue is not None:
                self.loop.call_soon_threadsafe(self.track_queue.put_nowait, None)
            return
        metrics = _frame_metrics
        if metrics is None:
            return
        now = time.monotonic()
        if self.media == "video" and self.last is not None and now - self.last > FREEZE_SECONDS:
            metrics.freezes.inc()
        self.last = now
        metrics.frames.labels(self.media).inc()


def _counting_worker(loop: asyncio.AbstractEventLoop, input_q: _CountingQueue, output_q: asyncio.Queue,
                     decode_error: threading.Event) -> None:
    """Runs once as the receiver's "decoder thread": tells its queue where the stream's end goes, and exits."""
    input_q.media = threading.current_thread().name.split("-", 1)[0]  # aiortc names it "<kind>-decoder"
    input_q.loop, input_q.track_queue = loop, output_q


class _NoBandwidthEstimate:
    def add(self, **_: Any) -> None:
        return None


class _CountingQueues:
    """What ``rtcrtpreceiver`` sees as its ``queue`` module while decoding is skipped."""

    Queue = _CountingQueue


_real_worker = rtcrtpreceiver.decoder_worker
_real_estimator = rtcrtpreceiver.RemoteBitrateEstimator


def skip_video_decoding(skip: bool = True) -> None:
    """Receivers created from now on in this process count encoded frames instead of decoding them."""
    rtcrtpreceiver.decoder_worker = _counting_worker if skip else _real_worker  # type: ignore[assignment]
    rtcrtpreceiver.queue = _CountingQueues if skip else queue  # type: ignore[assignment]
    rtcrtpreceiver.RemoteBitrateEstimator = _NoBandwidthEstimate if skip else _real_estimator  # type: ignore[misc]


def set_video_bitrate(bits_per_second: int) -> None:
    """Starting bitrate of VP8 encoders created from now on (aiortc adapts it to REMB within its bounds)."""
    vpx.DEFAULT_BITRATE = max(vpx.MIN_BITRATE, min(bits_per_second, vpx.MAX_BITRATE))


async def drain(track: Any, media: str, metrics: BotMetrics) -> None:
    """Receive ``track`` until it ends; count its (decoded) frames, and video gaps over ``FREEZE_SECONDS``.
    Without decoding, frames are counted as the jitter buffer completes them and the track only yields its end."""
    frames = metrics.frames.labels(media)
    last: float | None = None
    try:
        while True:
            await track.recv()
            now = time.monotonic()
            if media == "video" and last is not None and now - last > FREEZE_SECONDS:
                metrics.freezes.inc()
            last = now
            frames.inc()
    except MediaStreamError:
        return
