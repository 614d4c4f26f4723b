"""Client of one Janus node's WebSocket API: transactions, keepalives, health, reconnect.

Why our own and not ``janus-client`` from PyPI: that library is a *peer* (its VideoRoom plugin
creates its own aiortc PeerConnection), has no reconnect or node health, and hard-codes a 15 s
ping timeout. The signaling service relays JSEP for remote browsers and must mark a node
unhealthy within one health period, so it needs the bare protocol, which is small.

Protocol facts this relies on (measured, see ../shared/janus-facts.md):
- an asynchronous plugin request is answered by ``ack`` and then an ``event`` carrying the same
  transaction, and the event can arrive *before* the ack: replies are matched by transaction id;
- ``keepalive`` and ``trickle`` are answered by an ``ack`` only;
- sessions expire 60 s after their last keepalive; sessions of a closed WebSocket are destroyed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

from signaling.metrics import JANUS_REQUESTS, SignalingMetrics

log = logging.getLogger(__name__)

VIDEOROOM = "janus.plugin.videoroom"
EventCallback = Callable[[dict[str, Any]], None]


class JanusUnavailable(Exception):
    """The node is not connected, or the connection was lost before the reply."""


class JanusTimeout(JanusUnavailable):
    """No reply within the request timeout."""


class JanusError(Exception):
    """Janus (or the plugin) answered with an error."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"janus error {code}: {reason}")
        self.code = code
        self.reason = reason


@dataclass
class _Pending:
    future: asyncio.Future[dict[str, Any]]
    ack_is_final: bool


@dataclass
class JanusNode:
    """One WebSocket API connection to the Janus of SFU node ``name``."""

    name: str
    url: str
    metrics: SignalingMetrics
    request_timeout: float = 5.0
    health_period: float = 2.0
    keepalive_interval: float = 25.0
    on_sessions_lost: Callable[[JanusNode, set[int]], None] = lambda node, sessions: None
    on_health_change: Callable[[JanusNode, bool], None] = lambda node, healthy: None

    healthy: bool = field(default=False, init=False)
    sessions: set[int] = field(default_factory=set, init=False)
    _ws: ClientConnection | None = field(default=None, init=False)
    _pending: dict[str, _Pending] = field(default_factory=dict, init=False)
    _handlers: dict[int, EventCallback] = field(default_factory=dict, init=False)
    _session_handlers: dict[int, EventCallback] = field(default_factory=dict, init=False)
    _task: asyncio.Task[None] | None = field(default=None, init=False)
    _ids: Iterable[int] = field(default_factory=itertools.count, init=False)
    _connected_once: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _durations: dict[str, Any] = field(default_factory=dict, init=False)

    # ---- life cycle -------------------------------------------------------------------------
    def start(self) -> None:
        self.metrics.janus_node_up.labels(self.name).set(0)
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"janus-{self.name}")

    async def wait_connected(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._connected_once.wait(), timeout)
            return True
        except TimeoutError:
            return False

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._ws is not None:
            await self._ws.close()

    def _set_health(self, healthy: bool, why: str = "") -> None:
        if healthy != self.healthy:
            self.healthy = healthy
            self.metrics.janus_node_up.labels(self.name).set(1 if healthy else 0)
            if healthy:
                log.info("janus node %s is healthy", self.name)
            else:
                log.warning("janus node %s is unhealthy: %s", self.name, why)
            self.on_health_change(self, healthy)

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            try:
                async with websockets.connect(
                    self.url, subprotocols=["janus-protocol"], max_size=2**24,  # type: ignore[list-item]
                    open_timeout=self.request_timeout, ping_interval=None, compression=None,
                ) as ws:
                    self._ws = ws
                    backoff = 0.1
                    log.info("connected to janus node %s at %s", self.name, self.url)
                    await self._serve(ws)
            except asyncio.CancelledError:
                raise
            except (OSError, TimeoutError, websockets.InvalidHandshake, websockets.ConnectionClosed) as exc:
                self._lost(f"{type(exc).__name__}: {exc}")
            else:
                self._lost("connection closed")
            await asyncio.sleep(backoff * (1 + random.random() * 0.2))
            backoff = min(backoff * 2, 5.0)

    async def _serve(self, ws: ClientConnection) -> None:
        tasks = [asyncio.create_task(self._health_loop()), asyncio.create_task(self._keepalive_loop())]
        try:
            async for raw in ws:
                self._dispatch(raw)
        finally:
            for task in tasks:
                task.cancel()
            self._ws = None

    def _lost(self, why: str) -> None:
        self._set_health(False, why)
        pending, self._pending = self._pending, {}
        for p in pending.values():
            if not p.future.done():
                p.future.set_exception(JanusUnavailable(f"connection to {self.name} lost: {why}"))
        lost, self.sessions = self.sessions, set()
        self._handlers.clear()
        self._session_handlers.clear()
        if lost:
            log.warning("janus node %s: %d sessions lost with the connection", self.name, len(lost))
            self.on_sessions_lost(self, lost)

    async def _health_loop(self) -> None:
        while True:
            try:
                await self.request({"janus": "ping"}, kind="ping", timeout=min(self.request_timeout,
                                                                                self.health_period))
                self._connected_once.set()
                self._set_health(True)
            except JanusTimeout:
                self._set_health(False, f"no pong within {min(self.request_timeout, self.health_period)} s")
            except (JanusUnavailable, JanusError) as exc:
                self._set_health(False, str(exc))
            await asyncio.sleep(self.health_period)

    async def _keepalive_loop(self) -> None:
        while True:
            await asyncio.sleep(self.keepalive_interval)
            for session_id in list(self.sessions):
                try:
                    await self.request({"janus": "keepalive"}, session_id=session_id, kind="keepalive",
                                       ack_is_final=True)
                except (JanusUnavailable, JanusError) as exc:
                    log.debug("keepalive of session on %s failed: %s", self.name, exc)

    # ---- messages ---------------------------------------------------------------------------
    def _dispatch(self, raw: str | bytes) -> None:
        try:
            msg = json.loads(raw)
            kind = msg["janus"]
        except (ValueError, TypeError, KeyError):
            log.warning("janus node %s sent an unreadable message: %.200r", self.name, raw)
            return
        pending = self._pending.get(msg.get("transaction", ""))
        if pending is not None and not pending.future.done():
            if kind == "error":
                err = msg.get("error", {})
                pending.future.set_exception(JanusError(err.get("code", 0), err.get("reason", "unknown")))
            elif kind != "ack" or pending.ack_is_final:
                pending.future.set_result(msg)
            return
        if kind == "ack":
            return
        callback = self._handlers.get(msg.get("sender", -1))
        if callback is None:
            callback = self._session_handlers.get(msg.get("session_id", -1))
        if kind == "timeout":
            self.sessions.discard(msg.get("session_id", -1))
        if callback is not None:
            try:
                callback(msg)
            except Exception:  # a bug in one participant's handler must not stop the reader
                log.exception("janus event handler failed for %s", kind)

    async def request(self, body: dict[str, Any], *, kind: str, session_id: int | None = None,
                      handle_id: int | None = None, ack_is_final: bool = False,
                      timeout: float | None = None) -> dict[str, Any]:
        """Send one request and return Janus's reply (``success``, ``event``, ``pong`` or ``ack``)."""
        ws = self._ws
        if ws is None:
            raise JanusUnavailable(f"janus node {self.name} is not connected")
        transaction = f"t{next(self._ids)}"  # type: ignore[call-overload]
        message = {**body, "transaction": transaction}
        if session_id is not None:
            message["session_id"] = session_id
        if handle_id is not None:
            message["handle_id"] = handle_id
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[transaction] = _Pending(future, ack_is_final)
        started = time.perf_counter()
        try:
            await ws.send(json.dumps(message))
            return await asyncio.wait_for(future, timeout or self.request_timeout)
        except TimeoutError:
            self._set_health(False, f"{kind} timed out")  # the health loop restores it on the next pong
            raise JanusTimeout(f"janus node {self.name} did not answer {kind} within "
                               f"{timeout or self.request_timeout} s") from None
        except websockets.ConnectionClosed as exc:
            raise JanusUnavailable(f"connection to {self.name} closed: {exc}") from None
        finally:
            self._pending.pop(transaction, None)
            child = self._durations.get(kind)
            if child is None:  # bind each (node, request) child once: labels() is a locked lookup
                child = self._durations[kind] = self.metrics.janus_request_duration.labels(
                    self.name, kind if kind in JANUS_REQUESTS else "other")
            child.observe(time.perf_counter() - started)

    # ---- the API the hub uses ---------------------------------------------------------------
    async def create_session(self, on_event: EventCallback) -> int:
        reply = await self.request({"janus": "create"}, kind="create")
        session_id = int(reply["data"]["id"])
        self.sessions.add(session_id)
        self._session_handlers[session_id] = on_event
        return session_id

    def forget_session(self, session_id: int, handles: Iterable[int] = ()) -> None:
        """Stop keeping a session alive and routing its events; Janus expires it by itself."""
        self.sessions.discard(session_id)
        self._session_handlers.pop(session_id, None)
        for handle_id in handles:
            self._handlers.pop(handle_id, None)

    async def destroy_session(self, session_id: int, handles: Iterable[int] = ()) -> None:
        self.forget_session(session_id, handles)
        await self.request({"janus": "destroy"}, session_id=session_id, kind="destroy")

    async def attach(self, session_id: int, on_event: EventCallback, plugin: str = VIDEOROOM) -> int:
        reply = await self.request({"janus": "attach", "plugin": plugin}, session_id=session_id, kind="attach")
        handle_id = int(reply["data"]["id"])
        self._handlers[handle_id] = on_event
        return handle_id

    async def detach(self, session_id: int, handle_id: int) -> None:
        self._handlers.pop(handle_id, None)
        await self.request({"janus": "detach"}, session_id=session_id, handle_id=handle_id, kind="detach")

    async def message(self, session_id: int, handle_id: int, body: dict[str, Any], *, kind: str,
                      jsep: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """Send a plugin request; return the plugin's data and the JSEP, raising on plugin errors."""
        request: dict[str, Any] = {"janus": "message", "body": body}
        if jsep is not None:
            request["jsep"] = jsep
        reply = await self.request(request, session_id=session_id, handle_id=handle_id, kind=kind)
        data = reply.get("plugindata", {}).get("data", {})
        if "error_code" in data:
            raise JanusError(int(data["error_code"]), str(data.get("error", "plugin error")))
        return data, reply.get("jsep")

    async def trickle(self, session_id: int, handle_id: int, candidate: dict[str, Any] | None) -> None:
        body = {"janus": "trickle", "candidate": candidate if candidate is not None else {"completed": True}}
        await self.request(body, session_id=session_id, handle_id=handle_id, kind="trickle", ack_is_final=True)
