"""Rooms and participants: each room is a Janus VideoRoom on one SFU node, chosen by placement.

The hub relays JSEP between a client and Janus and keeps the bookkeeping placement needs (rooms
and participants per node). Every participant has its own Janus session: one publisher-type
handle (its presence in the room, and its published feed) and one handle per subscription.
Leaving sends VideoRoom ``leave`` before the session is destroyed: destroying first makes Janus
send every remaining participant ``leaving`` plus two ``unpublished`` events.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from signaling.janus import JanusError, JanusNode, JanusUnavailable
from signaling.metrics import SignalingMetrics
from signaling.placement import NodeLoad, Placement
from signaling.protocol import ProtocolError

log = logging.getLogger(__name__)
Outbox = Callable[[dict[str, Any]], None]
_participant_ids = itertools.count(1)


@dataclass(eq=False)
class Participant:
    user: str
    role: str
    display: str
    outbox: Outbox
    id: int = field(default_factory=lambda: next(_participant_ids))
    room: Room | None = None
    session_id: int | None = None
    handle_id: int | None = None
    feed_id: int | None = None
    private_id: int | None = None
    published: bool = False
    subscriptions: dict[int, int] = field(default_factory=dict)  # feed -> handle
    known_feeds: set[int] = field(default_factory=set)  # publishers this client has been told about
    offers: dict[int | None, float] = field(default_factory=dict)  # feed (None: own publish) -> offer time


@dataclass(eq=False)
class Room:
    name: str
    node: str
    janus_id: int
    max_participants: int
    members: dict[int, Participant] = field(default_factory=dict)
    reserved: int = 0  # joins in progress
    feeds: dict[int, Participant] = field(default_factory=dict)
    ready: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    @property
    def size(self) -> int:
        return len(self.members) + self.reserved


class Hub:
    def __init__(self, *, nodes: dict[str, JanusNode], placement: Placement, metrics: SignalingMetrics,
                 max_participants: int, handles: Callable[[str], float | None] = lambda node: None) -> None:
        self.nodes = nodes
        self.placement = placement
        self.metrics = metrics
        self.max_participants = max_participants
        self.handles = handles
        self.rooms: dict[str, Room] = {}
        self._by_session: dict[tuple[str, int], Participant] = {}
        self._background: set[asyncio.Task[None]] = set()

    # ---- load and placement -----------------------------------------------------------------
    def loads(self) -> list[NodeLoad]:
        rooms = dict.fromkeys(self.nodes, 0)
        people = dict.fromkeys(self.nodes, 0)
        for room in self.rooms.values():
            rooms[room.node] += 1
            people[room.node] += room.size
        return [NodeLoad(name, node.healthy, name in self.placement.draining, rooms[name], people[name],
                         self.handles(name)) for name, node in self.nodes.items()]

    def _update_gauges(self) -> None:
        self.metrics.rooms_active.set(len(self.rooms))
        self.metrics.participants_active.set(sum(len(r.members) for r in self.rooms.values()))

    async def _room_for(self, name: str) -> Room:
        room = self.rooms.get(name)
        if room is not None:
            await asyncio.shield(room.ready)
            return room
        node_name, policy = self.placement.choose(self.loads())
        room = Room(name, node_name, random.randrange(1, 2**53), self.max_participants)
        self.rooms[name] = room
        node = self.nodes[node_name]
        try:
            await _room_request(node, {
                "request": "create", "room": room.janus_id, "publishers": self.max_participants,
                "description": "lab room", "is_private": False, "notify_joining": False,
                "audiocodec": "opus", "videocodec": "vp8", "bitrate": 512000, "fir_freq": 10,
            }, kind="room_create")
        except BaseException as exc:
            self.rooms.pop(name, None)
            room.ready.set_exception(exc if isinstance(exc, Exception) else JanusUnavailable("cancelled"))
            room.ready.exception()  # retrieved: waiters re-raise it themselves
            raise
        self.metrics.placements.labels(node_name, policy).inc()
        log.info("room placed on %s by %s", node_name, policy)
        room.ready.set_result(None)
        self._update_gauges()
        return room

    async def _destroy_room_if_empty(self, room: Room) -> None:
        if room.size or self.rooms.get(room.name) is not room:
            return
        del self.rooms[room.name]
        self._update_gauges()
        node = self.nodes[room.node]
        if not node.healthy:
            return
        try:
            await _room_request(node, {"request": "destroy", "room": room.janus_id}, kind="room_destroy")
        except (JanusUnavailable, JanusError) as exc:
            log.info("room on %s not destroyed: %s", room.node, exc)

    # ---- participant operations -------------------------------------------------------------
    async def join(self, p: Participant, room_name: str) -> list[dict[str, Any]]:
        """Join ``p`` to the room (creating and placing it if new); return the room's publishers."""
        room = await self._room_for(room_name)
        if room.size >= room.max_participants:
            raise ProtocolError("room_full", f"room is full ({room.max_participants} participants)")
        room.reserved += 1
        node = self.nodes[room.node]
        try:
            p.session_id = await node.create_session(lambda msg: self._on_session_event(p, msg))
            p.handle_id = await node.attach(p.session_id, lambda msg: self._on_publisher_event(p, msg))
            data, _ = await node.message(p.session_id, p.handle_id, {
                "request": "join", "ptype": "publisher", "room": room.janus_id, "display": p.display,
            }, kind="join")
        except BaseException:
            room.reserved -= 1
            if p.session_id is not None:
                await _quietly(node.destroy_session(p.session_id))
            p.session_id = p.handle_id = None
            await self._destroy_room_if_empty(room)
            raise
        room.reserved -= 1
        p.room = room
        p.feed_id = int(data["id"])
        p.private_id = data.get("private_id")
        room.members[p.id] = p
        self._by_session[(room.node, p.session_id)] = p
        self._update_gauges()
        publishers = [_publisher(pub) for pub in data.get("publishers", [])]
        p.known_feeds.update(pub["feed"] for pub in publishers)
        return publishers

    def _joined(self, p: Participant) -> tuple[Room, JanusNode, int, int]:
        if p.room is None or p.session_id is None or p.handle_id is None:
            raise ProtocolError("not_joined", "join a room first")
        return p.room, self.nodes[p.room.node], p.session_id, p.handle_id

    async def publish(self, p: Participant, sdp: str) -> str:
        room, node, session, handle = self._joined(p)
        if p.role != "publisher":
            raise ProtocolError("not_publisher", "joined as subscriber: publishing is not allowed")
        p.offers[None] = time.monotonic()
        _, jsep = await node.message(session, handle, {"request": "publish", "audio": True, "video": True},
                                     jsep={"type": "offer", "sdp": sdp}, kind="publish")
        if not jsep or jsep.get("type") != "answer":
            raise JanusError(0, "publish returned no SDP answer")
        p.published = True
        room.feeds[p.feed_id] = p  # type: ignore[index]
        return str(jsep["sdp"])

    async def subscribe(self, p: Participant, feed: int) -> str:
        room, node, session, _ = self._joined(p)
        if feed not in room.feeds:
            raise ProtocolError("no_such_feed", f"no publisher {feed} in this room")
        if feed in p.subscriptions:
            raise ProtocolError("invalid_field", f"already subscribed to {feed}")
        handle = await node.attach(session, lambda msg: None)
        try:
            body = {"request": "join", "ptype": "subscriber", "room": room.janus_id, "streams": [{"feed": feed}]}
            if p.private_id is not None:
                body["private_id"] = p.private_id
            _, jsep = await node.message(session, handle, body, kind="subscribe")
        except BaseException:
            await _quietly(node.detach(session, handle))
            raise
        if not jsep or jsep.get("type") != "offer":
            await _quietly(node.detach(session, handle))
            raise JanusError(0, "subscribe returned no SDP offer")
        p.subscriptions[feed] = handle
        p.offers[feed] = time.monotonic()
        return str(jsep["sdp"])

    async def answer(self, p: Participant, feed: int, sdp: str) -> None:
        _, node, session, _ = self._joined(p)
        handle = p.subscriptions.get(feed)
        if handle is None:
            raise ProtocolError("no_such_feed", f"no subscription to {feed}: subscribe first")
        await node.message(session, handle, {"request": "start"}, jsep={"type": "answer", "sdp": sdp},
                           kind="start")

    async def candidate(self, p: Participant, feed: int | None, candidate: dict[str, Any] | None) -> None:
        _, node, session, publisher_handle = self._joined(p)
        handle = publisher_handle if feed is None else p.subscriptions.get(feed)
        if handle is None:
            raise ProtocolError("no_such_feed", f"no subscription to {feed}")
        await node.trickle(session, handle, candidate)

    def ice_state(self, p: Participant, feed: int | None, state: str) -> None:
        self._joined(p)
        started = p.offers.pop(feed, None)
        if started is not None:
            self.metrics.ice_negotiation.labels(state).observe(time.monotonic() - started)

    def _detach(self, p: Participant) -> tuple[Room, JanusNode, int | None, int | None, list[int]] | None:
        """Take ``p`` out of its room's bookkeeping; return what is left to clean up on Janus."""
        room = p.room
        if room is None:
            return None
        p.room = None
        room.members.pop(p.id, None)
        if p.feed_id is not None:
            room.feeds.pop(p.feed_id, None)
        session, handle = p.session_id, p.handle_id
        if session is not None:
            self._by_session.pop((room.node, session), None)
        handles = [h for h in (handle, *p.subscriptions.values()) if h]
        p.session_id = p.handle_id = None
        p.subscriptions.clear()
        self._update_gauges()
        return room, self.nodes[room.node], session, handle, handles

    async def leave(self, p: Participant) -> None:
        """Remove ``p`` from its room and Janus. Never raises for Janus trouble."""
        detached = self._detach(p)
        if detached is None:
            return
        room, node, session, handle, handles = detached
        if session is not None and node.healthy:
            if handle is not None:
                await _quietly(node.message(session, handle, {"request": "leave"}, kind="leave"))
            await _quietly(node.destroy_session(session, handles))
        elif session is not None:  # an unresponsive node: no keepalives, so Janus expires the session
            node.forget_session(session, handles)
        await self._destroy_room_if_empty(room)

    async def close(self) -> None:
        participants = [p for room in self.rooms.values() for p in room.members.values()]
        await asyncio.gather(*(self.leave(p) for p in participants))

    # ---- events from Janus ------------------------------------------------------------------
    def _on_publisher_event(self, p: Participant, msg: dict[str, Any]) -> None:
        kind = msg.get("janus")
        if kind == "hangup" and p.room is not None and p.feed_id is not None:
            p.room.feeds.pop(p.feed_id, None)
            return
        data = msg.get("plugindata", {}).get("data", {})
        if data.get("videoroom") != "event":
            return
        if data.get("publishers"):
            added = [_publisher(x) for x in data["publishers"]]
            p.known_feeds.update(pub["feed"] for pub in added)
            p.outbox({"type": "publisher_added", "publishers": added})
        for key in ("unpublished", "leaving"):
            feed = data.get(key)
            if feed in p.known_feeds:  # Janus also reports participants that never published
                p.known_feeds.discard(feed)
                p.outbox({"type": "publisher_removed", "feed": feed})

    def _on_session_event(self, p: Participant, msg: dict[str, Any]) -> None:
        if msg.get("janus") == "timeout":
            log.warning("janus session of a participant timed out")
            self._drop(p, "sfu_unavailable", "the SFU session expired")

    def sessions_lost(self, node: JanusNode, sessions: set[int]) -> None:
        """The connection to ``node`` dropped: its sessions, and so its rooms, are gone."""
        for session in sessions:
            p = self._by_session.get((node.name, session))
            if p is not None:
                self._drop(p, "sfu_unavailable", f"SFU node {node.name} became unavailable")

    def _drop(self, p: Participant, code: str, message: str) -> None:
        """Janus lost ``p``'s session: tell the client, forget the session, let an empty room go."""
        detached = self._detach(p)
        if detached is None:
            return
        p.outbox({"type": "error", "code": code, "message": message})
        room, node, session, _, handles = detached
        if session is not None:
            node.forget_session(session, handles)
        task = asyncio.get_running_loop().create_task(self._destroy_room_if_empty(room))
        self._background.add(task)
        task.add_done_callback(self._background.discard)


async def _room_request(node: JanusNode, body: dict[str, Any], *, kind: str) -> None:
    """A VideoRoom request about a room itself (create, destroy), on a short-lived session."""
    session = await node.create_session(lambda msg: None)
    try:
        handle = await node.attach(session, lambda msg: None)
        await node.message(session, handle, body, kind=kind)
    finally:
        await _quietly(node.destroy_session(session))


def _publisher(entry: dict[str, Any]) -> dict[str, Any]:
    return {"feed": entry.get("id"), "display": entry.get("display", "")}


async def _quietly(awaitable: Any) -> None:
    try:
        await awaitable
    except (JanusUnavailable, JanusError) as exc:
        log.debug("ignored during cleanup: %s", exc)
