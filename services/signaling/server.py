"""The signaling process: WebSocket endpoint, health and metrics, admin API, Janus nodes.

Port ``config.port`` serves ``/ws/signaling`` plus ``GET /healthz``, ``/readyz`` and ``/metrics``
(answered in ``process_request`` before any upgrade). Every TCP connection to it counts against
the caps of ``limits`` from accept; an upgrade request over them is answered 429 or 503. Port
``config.admin_port`` serves the admin API (aiohttp, because WebSocket servers only accept GET):
the placement policy and draining, behind its own bearer token.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from http import HTTPStatus
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from signaling.config import Config
from signaling.connection import ClientConnection
from signaling.exporter_handles import HandlesPoller
from signaling.janus import JanusNode
from signaling.limits import ADDRESS_FULL, ConnectionCaps, JoinThrottle, fit_descriptor_limit, source_key
from signaling.metrics import SignalingMetrics
from signaling.placement import Placement
from signaling.rooms import Hub

log = logging.getLogger(__name__)
WS_PATH = "/ws/signaling"
LAG_PROBE_SECONDS = 0.5
HANDSHAKE_TIMEOUT = 10  # seconds from TCP accept to a complete upgrade request (websockets' open_timeout)
REFUSED_GRACE = 1.0  # seconds a connection over a cap has to send the request its 429 / 503 answers
RETRY_AFTER_SECONDS = 5


def _response(status: HTTPStatus, body: bytes, content_type: str, *extra: tuple[str, str]) -> Response:
    headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(body))),
                       ("Connection", "close"), *extra])
    return Response(status.value, status.phrase, headers, body)


class _Connection(ServerConnection):
    """A connection counted against the caps from TCP accept until it is gone, in any state.

    One over a cap is marked ``refusal`` at accept: its request, if it sends one in time, is answered
    429 or 503, and it is dropped after ``REFUSED_GRACE`` seconds either way, so a source cannot park
    half-open sockets beyond its cap for the whole handshake timeout.
    """

    def __init__(self, gate: SignalingServer, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gate = gate
        self.source = ""
        self.refusal: str | None = None
        self._grace: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        peer = transport.get_extra_info("peername")
        self.source = source_key(str(peer[0] if isinstance(peer, tuple) else peer))
        self.refusal = self.gate.caps.admit(self.source)
        if self.refusal is not None:
            self._grace = self.loop.call_later(REFUSED_GRACE, self._drop)

    def _drop(self) -> None:
        """Over a cap and no request within the grace: counted as refused like an answered one."""
        self._grace = None
        assert self.refusal is not None
        self.gate.metrics.protocol_errors.labels(self.refusal).inc()
        self.transport.abort()

    def request_arrived(self) -> None:
        if self._grace is not None:  # answered now, then closed by websockets
            self._grace.cancel()
            self._grace = None

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.request_arrived()
        if self.refusal is None and self.source:
            self.gate.caps.release(self.source)
            self.source = ""


class SignalingServer:
    def __init__(self, config: Config, *, registry: CollectorRegistry | None = None) -> None:
        self.config = config
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = SignalingMetrics(registry=self.registry, region=config.region, enabled=config.metrics)
        self.placement = Placement(config.placement_policy, list(config.sfu_nodes))
        self.handles_poller = HandlesPoller(config.sfu_exporters, config.handles_poll)
        self.nodes: dict[str, JanusNode] = {}
        self.hub = Hub(nodes=self.nodes, placement=self.placement, metrics=self.metrics,
                       max_participants=config.max_participants, handles=self.handles_poller.handles)
        for name, url in config.sfu_nodes.items():
            self.nodes[name] = JanusNode(
                name, url, self.metrics, request_timeout=config.janus_timeout,
                health_period=config.health_period, keepalive_interval=config.keepalive_interval,
                on_sessions_lost=self.hub.sessions_lost)
        self.caps = ConnectionCaps(config.max_connections, config.max_connections_per_address)
        self.join_throttle = JoinThrottle(config.join_failure_limit, config.join_failure_window,
                                          config.join_throttle)
        self._ws_server: Server | None = None
        self._admin_runner: web.AppRunner | None = None
        self._lag_task: asyncio.Task[None] | None = None
        self.port = config.port
        self.admin_port = config.admin_port

    # ---- life cycle -------------------------------------------------------------------------
    async def start(self) -> None:
        for node in self.nodes.values():
            node.start()
        self.handles_poller.start()
        self._lag_task = asyncio.get_running_loop().create_task(self._measure_lag(), name="loop-lag")
        self.caps.total = fit_descriptor_limit(self.config.max_connections)
        self._ws_server = await serve(
            self._handle, self.config.host, self.config.port, process_request=self._process_request,
            create_connection=lambda *args, **kwargs: _Connection(self, *args, **kwargs),
            open_timeout=HANDSHAKE_TIMEOUT,
            max_size=self.config.max_message_bytes, max_queue=16, compression=None, close_timeout=2,
            ping_interval=20, ping_timeout=20)
        self.port = self._ws_server.sockets[0].getsockname()[1]
        self._admin_runner = web.AppRunner(self._admin_app(), access_log=None)
        await self._admin_runner.setup()
        site = web.TCPSite(self._admin_runner, self.config.host, self.config.admin_port)
        await site.start()
        self.admin_port = self._admin_runner.addresses[0][1]
        log.info("signaling listening on %s:%d (admin %d), nodes %s, policy %s", self.config.host, self.port,
                 self.admin_port, ", ".join(self.nodes), self.placement.policy)

    async def close(self) -> None:
        """Stop accepting, close client connections (1001), leave every room on Janus, disconnect."""
        if self._ws_server is not None:
            self._ws_server.close()
            await self._ws_server.wait_closed()
        await self.hub.close()
        if self._admin_runner is not None:
            await self._admin_runner.cleanup()
        if self._lag_task is not None:
            self._lag_task.cancel()
        await self.handles_poller.close()
        await asyncio.gather(*(node.close() for node in self.nodes.values()))

    async def _measure_lag(self) -> None:
        while True:
            started = time.monotonic()
            await asyncio.sleep(LAG_PROBE_SECONDS)
            self.metrics.event_loop_lag.set(max(0.0, time.monotonic() - started - LAG_PROBE_SECONDS))

    # ---- WebSocket port ---------------------------------------------------------------------
    def ready(self) -> bool:
        return any(node.healthy for node in self.nodes.values())

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        assert isinstance(connection, _Connection)
        connection.request_arrived()
        if path == WS_PATH:
            return self._refusal(connection.refusal) if connection.refusal is not None else None
        started = time.perf_counter()
        if path == "/healthz":
            response = _response(HTTPStatus.OK, b"ok\n", "text/plain; charset=utf-8")
        elif path == "/readyz":
            nodes = {name: node.healthy for name, node in self.nodes.items()}
            status = HTTPStatus.OK if self.ready() else HTTPStatus.SERVICE_UNAVAILABLE
            body = json.dumps({"ready": self.ready(), "nodes": nodes}).encode()
            response = _response(status, body, "application/json")
        elif path == "/metrics":
            response = _response(HTTPStatus.OK, generate_latest(self.registry), CONTENT_TYPE_LATEST)
        else:
            response = _response(HTTPStatus.NOT_FOUND, f"not found; the WebSocket is at {WS_PATH}\n".encode(),
                                 "text/plain; charset=utf-8")
        endpoint = path if path in ("/healthz", "/readyz", "/metrics") else "other"
        self.metrics.http_duration.labels("GET", endpoint).observe(time.perf_counter() - started)
        return response

    def _refusal(self, reason: str) -> Response:
        self.metrics.protocol_errors.labels(reason).inc()
        if reason == ADDRESS_FULL:
            status, text = HTTPStatus.TOO_MANY_REQUESTS, (
                f"address_full: {self.caps.per_source} connections from your address are open\n")
        else:
            status, text = HTTPStatus.SERVICE_UNAVAILABLE, f"server_full: {self.caps.total} connections are open\n"
        return _response(status, text.encode(), "text/plain; charset=utf-8",
                         ("Retry-After", str(RETRY_AFTER_SECONDS)))

    async def _handle(self, ws: ServerConnection) -> None:
        assert isinstance(ws, _Connection)
        await ClientConnection(self, ws, ws.source).run()

    # ---- admin port -------------------------------------------------------------------------
    def _admin_app(self) -> web.Application:
        @web.middleware
        async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
            started = time.perf_counter()
            endpoint = "/admin/nodes" if request.path.startswith("/admin/nodes/") else (
                request.path if request.path == "/admin/placement" else "other")
            try:
                expected = f"Bearer {self.config.admin_token}".encode()
                if not hmac.compare_digest(request.headers.get("Authorization", "").encode(), expected):
                    return web.json_response({"error": "unauthorized", "message": "admin bearer token required"},
                                             status=401)
                return await handler(request)
            finally:
                self.metrics.http_duration.labels(request.method if request.method in ("GET", "PUT", "POST",
                                                  "DELETE") else "other", endpoint).observe(
                    time.perf_counter() - started)

        app = web.Application(middlewares=[guard], client_max_size=4096)
        app.add_routes([
            web.get("/admin/placement", self._get_placement),
            web.put("/admin/placement", self._put_placement),
            web.post("/admin/nodes/{node}/drain", self._drain),
            web.delete("/admin/nodes/{node}/drain", self._drain),
        ])
        return app

    def _placement_state(self) -> dict[str, Any]:
        return {"policy": self.placement.policy,
                "nodes": [load.__dict__ for load in self.hub.loads()],
                "rooms": {name: room.node for name, room in self.hub.rooms.items()}}

    async def _get_placement(self, request: web.Request) -> web.Response:
        return web.json_response(self._placement_state())

    async def _put_placement(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            self.placement.policy = body["policy"]
        except (ValueError, KeyError, TypeError) as exc:
            return web.json_response({"error": "bad_request", "message": f"expected {{\"policy\": ...}}: {exc}"},
                                     status=400)
        log.info("placement policy set to %s", self.placement.policy)
        return web.json_response(self._placement_state())

    async def _drain(self, request: web.Request) -> web.Response:
        node = request.match_info["node"]
        try:
            self.placement.drain(node, draining=request.method == "POST")
        except KeyError:
            return web.json_response({"error": "not_found", "message": f"no SFU node {node!r}"}, status=404)
        log.info("node %s %s", node, "draining" if request.method == "POST" else "accepting rooms")
        return web.json_response(self._placement_state())
