"""One Admin API sweep of a Janus node: what exists right now.

Cheap requests first, whatever the size of the node: ``ping`` (its round trip is the event-loop-lag
proxy), ``list_sessions``, ``loops_info`` (per-loop handle counts when Janus runs static event
loops) and the VideoRoom ``list`` through ``message_plugin`` (rooms and their sizes). Per-session
``list_handles`` runs only when ``loops_info`` cannot count handles or when handle IDs are needed;
``handle_info`` per handle only when media counters come from the Admin API
(``JANUS_EXPORTER_MEDIA_SOURCE=admin``). Fan-out requests share the client's concurrency limit.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from janus_exporter.admin import AdminClient, AdminError

VIDEOROOM = "janus.plugin.videoroom"
UP_ICE_STATES = ("connected", "ready")


@dataclass
class Inventory:
    """A consistent snapshot of one node, or nothing: a sweep that fails yields no Inventory."""

    admin_rtt_seconds: float
    sessions: int
    handles: int
    room_sizes: list[int]
    handle_ids: list[int] | None = None
    handle_infos: dict[int, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def rooms(self) -> int:
        return len(self.room_sizes)

    @property
    def largest_room(self) -> int:
        return max(self.room_sizes, default=0)


def _ids(reply: Mapping[str, Any], key: str) -> list[int]:
    values = reply.get(key)
    if not isinstance(values, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise AdminError("bad_reply", f"{key} is not a list of IDs: {str(values)[:80]}")
    return values


def room_sizes(reply: Mapping[str, Any]) -> list[int]:
    """Participant counts from a ``message_plugin`` VideoRoom ``list`` reply."""
    response = reply.get("response")
    rooms = response.get("list") if isinstance(response, Mapping) else None
    if not isinstance(rooms, list):
        raise AdminError("bad_reply", f"VideoRoom list reply has no list: {str(reply)[:120]}")
    sizes = []
    for room in rooms:
        count = room.get("num_participants") if isinstance(room, Mapping) else None
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise AdminError("bad_reply", f"room without num_participants: {str(room)[:80]}")
        sizes.append(count)
    return sizes


def loop_handles(reply: Mapping[str, Any]) -> int | None:
    """Handles summed over static event loops, or None when Janus runs no static loops."""
    loops = reply.get("loops")
    if not isinstance(loops, list) or not loops:
        return None
    try:
        return sum(int(loop["handles"]) for loop in loops)
    except (KeyError, TypeError, ValueError) as exc:
        raise AdminError("bad_reply", f"loops_info: {str(loops)[:80]}") from exc


def peer_connection_up(info: Mapping[str, Any]) -> bool:
    """A ``handle_info`` says the PeerConnection is up: ICE connected/ready and DTLS connected."""
    webrtc = info.get("webrtc") or {}
    ice = (webrtc.get("ice") or {}).get("state")
    dtls = (webrtc.get("dtls") or {}).get("dtls-state")
    return ice in UP_ICE_STATES and dtls == "connected" and not (info.get("flags") or {}).get("cleaning")


def handle_age_seconds(info: Mapping[str, Any]) -> float | None:
    """How long ago Janus created the handle, from its own clock (``current_time - created``, in µs)."""
    created, now = info.get("created"), info.get("current_time")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (created, now)):
        return None
    return max(now - created, 0) / 1e6  # type: ignore[operator]


async def sweep(client: AdminClient, *, handle_info: bool) -> Inventory:
    """Read one node's inventory; raises ``AdminError`` (or TimeoutError under the caller's deadline)."""
    started = time.perf_counter()
    await client.request("ping")
    rtt = time.perf_counter() - started
    sessions_reply, loops_reply, rooms_reply = await asyncio.gather(
        client.request("list_sessions"),
        client.request("loops_info"),
        client.request("message_plugin", plugin=VIDEOROOM, request={"request": "list"}),
    )
    sessions = _ids(sessions_reply, "sessions")
    handles = loop_handles(loops_reply)
    inventory = Inventory(admin_rtt_seconds=rtt, sessions=len(sessions), handles=handles or 0,
                          room_sizes=room_sizes(rooms_reply))
    if handles is None or handle_info:
        per_session = await asyncio.gather(*(_session_handles(client, s) for s in sessions))
        pairs = [(s, h) for s, handles_of in zip(sessions, per_session, strict=True) for h in handles_of]
        inventory.handle_ids = [h for _, h in pairs]
        inventory.handles = len(pairs)
        if handle_info:
            infos = await asyncio.gather(*(_handle_info(client, s, h) for s, h in pairs))
            inventory.handle_infos = {h: info for (_, h), info in zip(pairs, infos, strict=True) if info is not None}
    return inventory


async def _session_handles(client: AdminClient, session: int) -> list[int]:
    try:
        return _ids(await client.request("list_handles", session_id=session), "handles")
    except AdminError as exc:
        if exc.reason == "janus_error":  # the session ended between the two requests
            return []
        raise


async def _handle_info(client: AdminClient, session: int, handle: int) -> Mapping[str, Any] | None:
    try:
        reply = await client.request("handle_info", session_id=session, handle_id=handle)
    except AdminError as exc:
        if exc.reason == "janus_error":  # the handle went away between the two requests
            return None
        raise
    info = reply.get("info")
    if not isinstance(info, Mapping):
        raise AdminError("bad_reply", f"handle_info without info: {str(reply)[:80]}")
    return info
