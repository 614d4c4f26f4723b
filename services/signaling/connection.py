"""One client WebSocket on ``/ws/signaling``: rate limit, parsing, dispatch, bounded send queue.

Nothing a client sends can take the process or another room down: every message is checked by
``protocol.parse``, every failure becomes an error frame plus a metric, outgoing frames go
through a bounded queue (a client that stops reading is closed with 1008 instead of growing
memory), and the participant is removed from its room however the connection ends. A connection
that has not joined within ``join_timeout`` of its handshake or of its last refused join is closed
with 4408; joins from a source with too many refused joins are refused as ``throttled``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import TYPE_CHECKING, Any

import websockets
from websockets.asyncio.server import ServerConnection
from websockets.frames import CloseCode

from signaling import protocol
from signaling.janus import JanusError, JanusTimeout, JanusUnavailable
from signaling.limits import JOIN_TIMEOUT, JOIN_TIMEOUT_CLOSE_CODE
from signaling.placement import NoNodeAvailable
from signaling.protocol import ProtocolError
from signaling.rooms import Participant
from signaling.tokens import TokenRejected, verify

if TYPE_CHECKING:
    from signaling.server import SignalingServer

log = logging.getLogger(__name__)


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class ClientConnection:
    def __init__(self, server: SignalingServer, ws: ServerConnection, source: str) -> None:
        self.server = server
        self.ws = ws
        self.metrics = server.metrics
        config = server.config
        self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize=config.send_queue)
        self.bucket = TokenBucket(config.rate_limit, config.rate_burst)
        self.participant: Participant | None = None
        self._closing = False
        self._last_rate_error = 0.0
        self._writer_task: asyncio.Task[None] | None = None
        self.source = source  # limits.source_key of the peer
        self._joined_once = False
        self._joining = False
        self._deadline: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._handlers = {
            "join": self._join, "publish": self._publish, "subscribe": self._subscribe, "answer": self._answer,
            "candidate": self._candidate, "ice_state": self._ice_state, "leave": self._leave, "ping": self._ping,
        }

    # ---- sending ----------------------------------------------------------------------------
    def send(self, frame: dict[str, Any]) -> None:
        """Queue a frame without waiting; a full queue means the client is not reading."""
        if self._closing:
            return
        try:
            self.queue.put_nowait(json.dumps(frame))
        except asyncio.QueueFull:
            self._too_slow()
            return
        self.metrics.count_message(protocol.metric_type(frame.get("type")), "out")

    def _too_slow(self) -> None:
        self._closing = True
        self.metrics.protocol_errors.labels("slow_consumer").inc()
        log.warning("closing a client that does not read (send queue of %d full)", self.queue.maxsize)
        self._spawn(self._close_slow())

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- join deadline ----------------------------------------------------------------------
    def _arm_deadline(self) -> None:
        """(Re)start the time this connection has to join: at the handshake and after a refused join."""
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = asyncio.get_running_loop().call_later(self.server.config.join_timeout, self._join_timed_out)

    def _join_timed_out(self) -> None:
        self._deadline = None
        if self._joined_once or self._joining or self._closing:
            return  # a join under way re-arms the deadline if it fails
        self._closing = True
        self.metrics.protocol_errors.labels(JOIN_TIMEOUT).inc()
        self._spawn(self.ws.close(JOIN_TIMEOUT_CLOSE_CODE, f"{JOIN_TIMEOUT}: no successful join within "
                                  f"{self.server.config.join_timeout:g} s"))

    async def _close_slow(self) -> None:
        # The writer is stuck waiting for the socket to drain: stop it so the close frame can go out,
        # and cut the TCP connection if even that cannot be written.
        if self._writer_task is not None:
            self._writer_task.cancel()
        try:
            await asyncio.wait_for(self.ws.close(CloseCode.POLICY_VIOLATION,
                                                 "slow_consumer: client is not reading its messages"), 2)
        except TimeoutError:
            self.ws.transport.abort()

    async def _writer(self) -> None:
        while True:
            data = await self.queue.get()
            await self.ws.send(data)

    def _error(self, code: str, message: str, ref: object = None, **extra: Any) -> None:
        self.send({**protocol.error_frame(code, message, ref), **extra})

    # ---- receiving --------------------------------------------------------------------------
    async def run(self) -> None:
        self.metrics.websockets_active.inc()
        writer = self._writer_task = asyncio.create_task(self._writer())
        self._arm_deadline()
        try:
            async for frame in self.ws:
                await self._on_frame(frame)
        except websockets.ConnectionClosedError as exc:
            if exc.sent is not None and exc.sent.code == CloseCode.MESSAGE_TOO_BIG:
                self.metrics.protocol_errors.labels("message_too_big").inc()
        finally:
            self._closing = True
            writer.cancel()
            if self._deadline is not None:
                self._deadline.cancel()
            self.metrics.websockets_active.dec()
            if self.participant is not None:
                participant, self.participant = self.participant, None
                await self.server.hub.leave(participant)

    async def _on_frame(self, frame: str | bytes) -> None:
        if not self.bucket.take():
            self.metrics.protocol_errors.labels("rate_limited").inc()
            now = time.monotonic()
            if now - self._last_rate_error >= 1.0:  # one error frame per second, not one per message
                self._last_rate_error = now
                self._error("rate_limited", f"more than {self.server.config.rate_limit:g} messages/s: "
                            "messages are being dropped")
            return
        try:
            message = protocol.parse(frame)
        except ProtocolError as exc:
            self.metrics.count_message(exc.msg_type, "in")
            self.metrics.protocol_errors.labels(exc.reason).inc()
            self._error(exc.reason, str(exc))
            return
        msg_type = message["type"]
        self.metrics.count_message(msg_type, "in")
        ref = message.get("id")
        try:
            await self._handlers[msg_type](message, ref)
        except TokenRejected as exc:
            self.metrics.auth_failures.labels(exc.reason).inc()
            if exc.reason != "throttled":
                self.server.join_throttle.refused(self.source)
            self._error("unauthorized", str(exc), ref, reason=exc.reason)
        except (ProtocolError, NoNodeAvailable, JanusUnavailable, JanusError) as exc:
            reason, text = _refusal(exc)
            self.metrics.protocol_errors.labels(reason).inc()
            self._error(reason, text, ref)
        except Exception:
            log.exception("unexpected error handling %s", msg_type)
            self.metrics.protocol_errors.labels("internal").inc()
            self._error("internal", "internal error; the message was not processed", ref)

    def _reply(self, frame: dict[str, Any], ref: object) -> None:
        self.send({**frame, "id": ref} if ref is not None else frame)

    def _joined(self) -> Participant:
        if self.participant is None:
            raise ProtocolError("not_joined", "join a room first")
        return self.participant

    # ---- message types ----------------------------------------------------------------------
    async def _join(self, message: dict[str, Any], ref: object) -> None:
        if self.participant is not None and self.participant.room is not None:
            raise ProtocolError("already_joined", "this connection has joined a room already; leave first")
        started = time.monotonic()
        wait = self.server.join_throttle.retry_after(self.source)
        if wait > 0:
            raise TokenRejected("throttled", f"too many refused joins from your address: retry in {wait:.0f} s")
        self._joining = True
        try:
            grant = verify(self.server.config.token_key, message.get("token"), room=message["room"])
            participant = Participant(user=grant.user, role=message["role"],
                                      display=message.get("display", grant.user)[:64], outbox=self.send)
            self.participant = participant
            try:
                publishers = await self.server.hub.join(participant, message["room"])
            except BaseException:
                self.participant = None
                raise
        except BaseException:
            if not self._joined_once and not self._closing:
                self._arm_deadline()
            raise
        finally:
            self._joining = False
        self._joined_once = True
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self.metrics.join_duration.observe(time.monotonic() - started)
        self._reply({"type": "joined", "room": message["room"], "participant": participant.id,
                     "feed": participant.feed_id, "role": participant.role, "publishers": publishers}, ref)

    async def _publish(self, message: dict[str, Any], ref: object) -> None:
        sdp = await self.server.hub.publish(self._joined(), message["sdp"])
        self._reply({"type": "answer", "sdp": sdp}, ref)

    async def _subscribe(self, message: dict[str, Any], ref: object) -> None:
        sdp = await self.server.hub.subscribe(self._joined(), message["feed"])
        self._reply({"type": "offer", "feed": message["feed"], "sdp": sdp}, ref)

    async def _answer(self, message: dict[str, Any], ref: object) -> None:
        await self.server.hub.answer(self._joined(), message["feed"], message["sdp"])
        self._reply({"type": "subscribed", "feed": message["feed"]}, ref)

    async def _candidate(self, message: dict[str, Any], ref: object) -> None:
        await self.server.hub.candidate(self._joined(), message.get("feed"), message["candidate"])

    async def _ice_state(self, message: dict[str, Any], ref: object) -> None:
        self.server.hub.ice_state(self._joined(), message.get("feed"), message["state"])

    async def _leave(self, message: dict[str, Any], ref: object) -> None:
        participant = self._joined()
        self.participant = None
        await self.server.hub.leave(participant)
        self._reply({"type": "left"}, ref)

    async def _ping(self, message: dict[str, Any], ref: object) -> None:
        self._reply({"type": "pong"}, ref)


def _refusal(exc: Exception) -> tuple[str, str]:
    """The error code (and protocol-error reason) and message for a refused client message."""
    if isinstance(exc, ProtocolError):
        return exc.reason, str(exc)
    if isinstance(exc, JanusTimeout):
        return "sfu_timeout", f"the SFU did not answer in time: {exc}"
    if isinstance(exc, JanusError):
        return "sfu_error", f"the SFU refused: {exc.reason}"
    return "sfu_unavailable", str(exc)  # NoNodeAvailable, JanusUnavailable
