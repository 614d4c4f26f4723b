"""Janus event-handler posts (sample event handler, ``json=compact``) into the media ledger.

Janus posts one event object, or an array of them when ``grouping`` is on. Media stats (type 32,
subtype 3) come one per handle and stream, or, with ``combine_media_stats``, one per handle whose
``event`` is an array of streams: both shapes are accepted. Type 16 subtype 6 tells a
PeerConnection up (``webrtcup``) or hung up; type 2 ``attached`` announces a new handle (its
counters start at zero) and ``detached`` retires it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from janus_exporter.media import BadSample, MediaLedger, PeerConnections, stream_from_event

EVENT_TYPES = {1: "session", 2: "handle", 4: "external", 8: "jsep", 16: "webrtc", 32: "media", 64: "plugin",
               128: "transport", 256: "core"}
EVENT_TYPE_LABELS = (*EVENT_TYPES.values(), "other")
REJECT_REASONS = ("source", "malformed", "too_large")
SLOW_LINK_DIRECTIONS = ("uplink", "downlink")


class EventSink:
    """Applies events to the ledger and PeerConnection set and counts them by type."""

    def __init__(self, ledger: MediaLedger, peer_connections: PeerConnections, *, media_stats: bool = True) -> None:
        """``media_stats=False``: stats events are counted but not applied (media comes from the Admin API)."""
        self.ledger = ledger
        self.peer_connections = peer_connections
        self.media_stats = media_stats
        self.received = dict.fromkeys(EVENT_TYPE_LABELS, 0)
        self.rejected = dict.fromkeys(REJECT_REASONS, 0)

    def reject(self, reason: str) -> None:
        self.rejected[reason] += 1

    def accept(self, payload: Any, now: float | None = None) -> int:
        """Apply a decoded post (one event or a list); return how many events were understood."""
        now = time.monotonic() if now is None else now
        events = payload if isinstance(payload, list) else [payload]
        understood = 0
        for event in events:
            try:
                self._apply(event, now)
                understood += 1
            except (BadSample, KeyError, TypeError, ValueError):
                self.rejected["malformed"] += 1
        return understood

    def _apply(self, event: Any, now: float) -> None:
        if not isinstance(event, Mapping):
            raise BadSample("event is not an object")
        kind = EVENT_TYPES.get(event.get("type"), "other")  # type: ignore[arg-type]
        self.received[kind] += 1
        body = event.get("event")
        if kind == "media":
            handle = int(event["handle_id"])
            subtype = event.get("subtype")
            if subtype == 3 and self.media_stats:
                streams = body if isinstance(body, list) else [body]
                samples = [stream_from_event(handle, stream) for stream in streams]
                for sample in samples:
                    self.ledger.record(sample, now)
                self.peer_connections.up(handle, now)
            elif subtype == 2 and isinstance(body, Mapping):
                direction = body.get("slow_link")
                media = body.get("media")
                if direction in SLOW_LINK_DIRECTIONS and media in ("audio", "video"):
                    self.ledger.slow_link(direction, media)
        elif kind == "webrtc" and event.get("subtype") == 6 and isinstance(body, Mapping):
            handle = int(event["handle_id"])
            if body.get("connection") == "webrtcup":
                self.peer_connections.up(handle, now)
            elif body.get("connection") == "hangup":
                self.peer_connections.down(handle)
        elif kind == "handle" and isinstance(body, Mapping) and body.get("name") == "attached":
            self.ledger.announce(int(event["handle_id"]), now)
        elif kind == "handle" and isinstance(body, Mapping) and body.get("name") == "detached":
            handle = int(event["handle_id"])
            self.ledger.retire(handle)
            self.peer_connections.down(handle)
