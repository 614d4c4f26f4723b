"""Media counters that stay monotonic while handles come and go.

Janus reports cumulative counters per handle and stream (in type-32 stats events or in
``handle_info``). ``MediaLedger`` keeps the last value seen for each handle/stream/counter, adds
the delta to a node-wide total, treats a smaller value as a reset (the new value is the delta;
cumulative loss, which RTCP lets go down, keeps its high-water mark instead), and keeps a retired
handle's contribution in the total. Totals are keyed by a ``CounterKey`` (metric name and label
values) from fixed sets, so no label carries a handle or a room.

A stream's first sample counts in full only when its handle was *announced*: known to have been
created while the exporter watched (an ``attached`` event, or a ``handle_info`` younger than the
previous sweep), so its counters started at zero. Any other first sample is a baseline and adds
nothing: a handle that was there before the exporter started, or one forgotten after a long
silence (a frozen Janus, lost events) and heard again, would otherwise add its whole history at
once, a jump that ``rate()`` reads as a burst of traffic and NACKs that never happened.

``stream_from_event`` and ``stream_from_handle_info`` turn Janus's two shapes into the same
``StreamSample``; everything after that is shared.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

MEDIA_KINDS = ("audio", "video")
RTT_BUCKETS_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)

# A counter of the exposition: metric name + label values in the order of ``COUNTER_LABELS[name]``.
CounterKey = tuple[str, tuple[str, ...]]
COUNTER_LABELS: dict[str, tuple[str, ...]] = {
    "sfu_nacks_total": ("direction", "media"),
    "sfu_retransmissions_total": ("media",),
    "sfu_packets_total": ("direction", "media"),
    "sfu_bytes_total": ("direction", "media"),
    "sfu_packets_lost_total": ("origin", "media"),
}

# Cumulative loss from RTCP may go down (RFC 3550 6.4.1: duplicates and retransmissions that arrive
# count as received), which is not a reset: these counters keep their high-water mark.
HIGH_WATER_METRICS = frozenset({"sfu_packets_lost_total"})

# (metric, fixed label values before media) <- field of a stats event / path in handle_info media entry.
_FIELDS: tuple[tuple[str, tuple[str, ...], str, tuple[str, ...]], ...] = (
    ("sfu_nacks_total", ("received",), "nacks-received", ("stats", "in", "nacks")),
    ("sfu_nacks_total", ("sent",), "nacks-sent", ("stats", "out", "nacks")),
    ("sfu_retransmissions_total", (), "retransmissions-received", ("stats", "in", "retransmissions")),
    ("sfu_packets_total", ("received",), "packets-received", ("stats", "in", "packets")),
    ("sfu_packets_total", ("sent",), "packets-sent", ("stats", "out", "packets")),
    ("sfu_bytes_total", ("received",), "bytes-received", ("stats", "in", "bytes")),
    ("sfu_bytes_total", ("sent",), "bytes-sent", ("stats", "out", "bytes")),
    ("sfu_packets_lost_total", ("local",), "lost", ("rtcp", "main", "lost")),
    ("sfu_packets_lost_total", ("remote",), "lost-by-remote", ("rtcp", "main", "lost-by-remote")),
)


class BadSample(ValueError):
    """A stats payload lacks a field or holds a value that is not a count."""


@dataclass(frozen=True)
class StreamSample:
    """Cumulative counters of one stream of one handle, at one moment."""

    handle: int
    stream: int
    media: str
    counters: Mapping[CounterKey, float]
    rtt_seconds: float | None  # None: Janus has no RTT yet (it reports 0)


def _count(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise BadSample(f"not a count: {value!r}")
    return float(value)


def _media(value: Any) -> str:
    if value not in MEDIA_KINDS:
        raise BadSample(f"media {value!r} is not audio or video")
    return str(value)


def _sample(handle: int, stream: int, media: str, values: Mapping[CounterKey, float], rtt_ms: Any) -> StreamSample:
    rtt = _count(rtt_ms) if rtt_ms is not None else 0.0
    return StreamSample(handle, stream, media, values, rtt / 1000.0 if rtt > 0 else None)


def stream_from_event(handle: int, event: Mapping[str, Any]) -> StreamSample:
    """One stream of a type-32 subtype-3 event (``event`` is one element of the event body)."""
    media = _media(event.get("media"))
    values = {(metric, (*fixed, media)): _count(event[name])
              for metric, fixed, name, _ in _FIELDS if name in event}
    if not values:
        raise BadSample("stats event carries no counter")
    stream = event.get("mindex", event.get("mid", 0))
    try:
        stream = int(stream)
    except (TypeError, ValueError) as exc:
        raise BadSample(f"stream index {stream!r}") from exc
    return _sample(handle, stream, media, values, event.get("rtt"))


def streams_from_handle_info(handle: int, info: Mapping[str, Any]) -> list[StreamSample]:
    """Every stream under ``info.webrtc.media`` of a ``handle_info`` reply's ``info``."""
    samples = []
    media_map = (info.get("webrtc") or {}).get("media") or {}
    if not isinstance(media_map, Mapping):
        raise BadSample("webrtc.media is not an object")
    for index, entry in media_map.items():
        if not isinstance(entry, Mapping) or entry.get("type") not in MEDIA_KINDS:
            continue  # data channels have no RTP counters
        media = entry["type"]
        values: dict[CounterKey, float] = {}
        for metric, fixed, _, path in _FIELDS:
            node: Any = entry
            for part in path:
                node = node.get(part) if isinstance(node, Mapping) else None
            if node is not None:
                values[(metric, (*fixed, media))] = _count(node)
        rtt = ((entry.get("rtcp") or {}).get("main") or {}).get("rtt")
        samples.append(_sample(handle, int(index), media, values, rtt))
    return samples


@dataclass
class Histogram:
    """A cumulative histogram kept by hand (the collector exposes it)."""

    buckets: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * len(self.buckets)

    def observe(self, value: float) -> None:
        for i in range(bisect.bisect_left(self.buckets, value), len(self.buckets)):
            self.counts[i] += 1
        self.total += value
        self.count += 1


class MediaLedger:
    """Node-wide monotonic totals built from per-handle cumulative counters."""

    def __init__(self) -> None:
        self.totals: dict[CounterKey, float] = {}
        self.resets = 0
        self.baselines = 0
        self.rtt = {media: Histogram(RTT_BUCKETS_SECONDS) for media in MEDIA_KINDS}
        self.slow_links: dict[tuple[str, str], int] = {}
        self._last: dict[int, dict[int, dict[CounterKey, float]]] = {}  # handle -> stream -> counter -> value
        self._announced: set[int] = set()
        self._activity: dict[int, float] = {}  # handle -> when it was last announced or sampled

    def announce(self, handle: int, now: float | None = None) -> None:
        """``handle`` was created while the exporter watched: its first samples count from zero."""
        self._announced.add(handle)
        self._activity[handle] = time.monotonic() if now is None else now

    def record(self, sample: StreamSample, now: float | None = None) -> None:
        """Add what changed since this handle/stream was last seen."""
        streams = self._last.setdefault(sample.handle, {})
        if sample.stream not in streams and sample.handle not in self._announced:
            streams[sample.stream] = dict(sample.counters)  # counting from an unknown past: the baseline
            self.baselines += 1
        else:
            self.resets += self._add(streams.setdefault(sample.stream, {}), sample.counters)
        if sample.rtt_seconds is not None:
            self.rtt[sample.media].observe(sample.rtt_seconds)
        self._activity[sample.handle] = time.monotonic() if now is None else now

    def _add(self, last: dict[CounterKey, float], counters: Mapping[CounterKey, float]) -> bool:
        """Add each counter's growth since ``last`` to the totals; True when the stream reset.

        A stream resets when one of its counters other than cumulative loss goes back: then every
        counter of it, loss included, counts from zero again.
        """
        reset = any(value < last.get(key, 0.0) for key, value in counters.items() if key[0] not in HIGH_WATER_METRICS)
        for key, value in counters.items():
            previous = 0.0 if reset else last.get(key, 0.0)
            if value < previous:
                continue  # cumulative loss below its high-water mark: nothing new lost
            self.totals[key] = self.totals.get(key, 0.0) + value - previous
            last[key] = value
        return reset

    def slow_link(self, direction: str, media: str) -> None:
        self.slow_links[(direction, media)] = self.slow_links.get((direction, media), 0) + 1

    def retire(self, handle: int) -> None:
        """Forget a handle's last values; its contribution stays in the totals."""
        self._activity.pop(handle, None)
        self._announced.discard(handle)
        self._last.pop(handle, None)

    def retire_missing(self, present: Iterable[int]) -> None:
        """Retire every known handle that is not in ``present``."""
        keep = set(present)
        for handle in [h for h in self._activity if h not in keep]:
            self.retire(handle)

    def retire_silent(self, older_than: float) -> None:
        """Retire handles neither announced nor sampled since ``older_than`` (monotonic seconds)."""
        for handle in [h for h, seen in self._activity.items() if seen < older_than]:
            self.retire(handle)

    @property
    def tracked_handles(self) -> int:
        """Handles whose last counter values are kept."""
        return len(self._last)


class PeerConnections:
    """Which handles have a PeerConnection up, from WebRTC events (16/6) and media stats as evidence."""

    def __init__(self) -> None:
        self._up: dict[int, float] = {}

    def up(self, handle: int, now: float | None = None) -> None:
        self._up[handle] = time.monotonic() if now is None else now

    def down(self, handle: int) -> None:
        self._up.pop(handle, None)

    def expire(self, older_than: float) -> None:
        for handle in [h for h, seen in self._up.items() if seen < older_than]:
            del self._up[handle]

    def __len__(self) -> int:
        return len(self._up)
