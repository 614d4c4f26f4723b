"""HTTP side of the exporter (aiohttp): ``GET /metrics``, ``GET /healthz`` and ``POST /events``.

``/metrics`` refreshes the exporter (one Admin sweep under its deadline) and answers even when
Janus does not. ``/events`` is the Janus sample event handler's backend: it accepts posts only
from ``JANUS_EXPORTER_EVENT_SOURCES`` and answers every accepted post with 204 at once, whatever
its content (Janus retries failed posts and then drops them; a bad event is counted, not retried).
"""

from __future__ import annotations

import ipaddress
import json
import logging

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

from janus_exporter.collectors import build_registry
from janus_exporter.exporter import Exporter

log = logging.getLogger("janus_exporter")
EXPORTER_KEY = web.AppKey("exporter", Exporter)
REGISTRY_KEY = web.AppKey("registry", CollectorRegistry)


def _source_allowed(exporter: Exporter, remote: str | None) -> bool:
    try:
        address = ipaddress.ip_address((remote or "").split("%")[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return any(address in network for network in exporter.config.event_sources)


async def metrics(request: web.Request) -> web.Response:
    exporter = request.app[EXPORTER_KEY]
    async with exporter.lock:
        await exporter.refresh()
        body = generate_latest(request.app[REGISTRY_KEY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def events(request: web.Request) -> web.Response:
    exporter = request.app[EXPORTER_KEY]
    sink = exporter.events
    if not _source_allowed(exporter, request.remote):
        sink.reject("source")
        log.warning("event post from %s refused: not in JANUS_EXPORTER_EVENT_SOURCES", request.remote)
        return web.Response(status=403, text="source not allowed\n")
    limit = exporter.config.max_event_bytes
    body = await request.content.read(limit + 1)
    if len(body) > limit:
        sink.reject("too_large")
        log.warning("event post of more than %d bytes dropped", limit)
        return web.Response(status=204)
    try:
        payload = json.loads(body)
    except ValueError:
        sink.reject("malformed")
        log.warning("event post is not JSON: %r", body[:80])
        return web.Response(status=204)
    sink.accept(payload)
    return web.Response(status=204)


def build_app(exporter: Exporter, registry: CollectorRegistry | None = None) -> web.Application:
    app = web.Application(client_max_size=exporter.config.max_event_bytes + 1024)
    app[EXPORTER_KEY] = exporter
    app[REGISTRY_KEY] = build_registry(exporter, registry)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_post("/events", events)

    async def close_exporter(app: web.Application) -> None:
        await exporter.close()

    app.on_cleanup.append(close_exporter)
    return app
