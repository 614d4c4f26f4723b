"""The alert sink's HTTP service: Alertmanager posts notifications, tests and labs read them back.

Endpoints (aiohttp):

- ``POST /alerts``: an Alertmanager webhook payload (version 4). A valid one is kept in memory
  (the newest ``max_notifications``, and no more than ``max_stored_bytes`` of bodies); a body that
  is too large (413) or not a webhook payload (400) is refused with a JSON ``error`` and counted.
- ``GET /alerts``: ``{"count": n, "notifications": [...]}``, oldest first, filtered by the query
  parameters ``alertname`` (the notification's common label or any of its alerts' label),
  ``status`` (``firing``/``resolved``), ``receiver`` and ``since`` (only ids greater than it).
- ``DELETE /alerts``: forget every notification (a lab starting a scenario).
- ``GET /healthz``: ``{"status": "ok"}``.
- ``GET /metrics``: the sink's own Prometheus metrics (``alert_sink_*``).
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    disable_created_metrics,
    generate_latest,
)

log = logging.getLogger("alert_sink")

STATUSES = ("firing", "resolved")
REJECT_REASONS = ("malformed", "too_large")
DEFAULT_MAX_NOTIFICATIONS = 1000
DEFAULT_MAX_BODY_BYTES = 1 << 20
DEFAULT_MAX_STORED_BYTES = 64 << 20


class PayloadError(ValueError):
    """The body is not an Alertmanager webhook payload; ``str()`` says what is wrong."""


def _string_map(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise PayloadError(f"{where} must be an object of strings")
    return value


def _string(payload: dict[str, Any], key: str, where: str = "payload", *, required: bool = True) -> str:
    value = payload.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise PayloadError(f"{where}.{key} must be a string")
    return value


def validate(payload: Any) -> dict[str, Any]:
    """Check an Alertmanager webhook payload; return the notification as the sink keeps it."""
    if not isinstance(payload, dict):
        raise PayloadError("payload must be a JSON object")
    status = _string(payload, "status")
    if status not in STATUSES:
        raise PayloadError(f"payload.status must be one of {', '.join(STATUSES)}")
    alerts = payload.get("alerts")
    if not isinstance(alerts, list) or not alerts:
        raise PayloadError("payload.alerts must be a non-empty list")
    kept_alerts = []
    for index, alert in enumerate(alerts):
        where = f"payload.alerts[{index}]"
        if not isinstance(alert, dict):
            raise PayloadError(f"{where} must be an object")
        alert_status = _string(alert, "status", where)
        if alert_status not in STATUSES:
            raise PayloadError(f"{where}.status must be one of {', '.join(STATUSES)}")
        labels = _string_map(alert.get("labels"), f"{where}.labels")
        if "alertname" not in labels:
            raise PayloadError(f"{where}.labels has no alertname")
        kept_alerts.append({
            "status": alert_status,
            "labels": labels,
            "annotations": _string_map(alert.get("annotations"), f"{where}.annotations"),
            "startsAt": _string(alert, "startsAt", where, required=False),
            "endsAt": _string(alert, "endsAt", where, required=False),
            "fingerprint": _string(alert, "fingerprint", where, required=False),
        })
    truncated = payload.get("truncatedAlerts", 0)
    if not isinstance(truncated, int) or isinstance(truncated, bool) or truncated < 0:
        raise PayloadError("payload.truncatedAlerts must be a non-negative integer")
    return {
        "version": _string(payload, "version"),
        "status": status,
        "receiver": _string(payload, "receiver"),
        "groupKey": _string(payload, "groupKey"),
        "groupLabels": _string_map(payload.get("groupLabels"), "payload.groupLabels"),
        "commonLabels": _string_map(payload.get("commonLabels"), "payload.commonLabels"),
        "commonAnnotations": _string_map(payload.get("commonAnnotations"), "payload.commonAnnotations"),
        "externalURL": _string(payload, "externalURL", required=False),
        "truncatedAlerts": truncated,
        "alerts": kept_alerts,
    }


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


class AlertSink:
    """The sink: bounded notification store, its metrics and the aiohttp application serving them."""

    def __init__(self, *, max_notifications: int = DEFAULT_MAX_NOTIFICATIONS,
                 max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, max_stored_bytes: int = DEFAULT_MAX_STORED_BYTES,
                 registry: CollectorRegistry | None = None) -> None:
        if max_notifications < 1 or max_body_bytes < 1 or max_stored_bytes < max_body_bytes:
            raise ValueError("limits must be positive and max_stored_bytes at least max_body_bytes")
        self.max_body_bytes = max_body_bytes
        self.max_stored_bytes = max_stored_bytes
        self._notifications: deque[tuple[dict[str, Any], int]] = deque(maxlen=max_notifications)
        self._stored_bytes = 0
        self._next_id = 1
        self.registry = registry if registry is not None else CollectorRegistry()
        disable_created_metrics()  # no panel or rule reads _created (process-wide)
        self.received = Counter("alert_sink_notifications_total", "Notifications accepted, by notification status",
                                ["status"], registry=self.registry)
        self.alerts_received = Counter("alert_sink_alerts_total",
                                       "Alerts inside accepted notifications, by alert status",
                                       ["status"], registry=self.registry)
        self.rejected = Counter("alert_sink_notifications_rejected_total", "Posts refused, by reason",
                                ["reason"], registry=self.registry)
        self.stored = Gauge("alert_sink_notifications_stored", "Notifications kept in memory", registry=self.registry)
        for status in STATUSES:
            self.received.labels(status)
            self.alerts_received.labels(status)
        for reason in REJECT_REASONS:
            self.rejected.labels(reason)
        self.app = web.Application(client_max_size=max_body_bytes)
        self.app.add_routes([
            web.post("/alerts", self._post_alerts),
            web.get("/alerts", self._get_alerts),
            web.delete("/alerts", self._delete_alerts),
            web.get("/healthz", self._healthz),
            web.get("/metrics", self._metrics),
        ])
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None

    # -- store ------------------------------------------------------------------------------------

    def record(self, payload: Any, size: int = 0) -> dict[str, Any]:
        """Validate and keep one webhook payload of ``size`` body bytes; return the stored notification."""
        notification = validate(payload)
        notification = {"id": self._next_id, "receivedAt": datetime.now(UTC).isoformat(), **notification}
        self._next_id += 1
        if len(self._notifications) == self._notifications.maxlen:
            self._stored_bytes -= self._notifications[0][1]
        self._notifications.append((notification, size))
        self._stored_bytes += size
        while self._stored_bytes > self.max_stored_bytes and len(self._notifications) > 1:
            self._stored_bytes -= self._notifications.popleft()[1]
        self.received.labels(notification["status"]).inc()
        for alert in notification["alerts"]:
            self.alerts_received.labels(alert["status"]).inc()
        self.stored.set(len(self._notifications))
        return notification

    def query(self, *, alertname: str | None = None, status: str | None = None, receiver: str | None = None,
              since: int = 0) -> list[dict[str, Any]]:
        """Stored notifications, oldest first, that match every given filter."""
        result = []
        for notification, _ in self._notifications:
            if notification["id"] <= since:
                continue
            if status is not None and notification["status"] != status:
                continue
            if receiver is not None and notification["receiver"] != receiver:
                continue
            if alertname is not None and notification["commonLabels"].get("alertname") != alertname and not any(
                    a["labels"].get("alertname") == alertname for a in notification["alerts"]):
                continue
            result.append(notification)
        return result

    def clear(self) -> int:
        count = len(self._notifications)
        self._notifications.clear()
        self._stored_bytes = 0
        self.stored.set(0)
        return count

    # -- HTTP -------------------------------------------------------------------------------------

    def _reject(self, reason: str, status: int, message: str) -> web.Response:
        self.rejected.labels(reason).inc()
        log.warning("refused a post: %s", message)
        return _error(status, message)

    async def _post_alerts(self, request: web.Request) -> web.Response:
        too_large = f"body larger than {self.max_body_bytes} bytes"
        if request.content_length is not None and request.content_length > self.max_body_bytes:
            return self._reject("too_large", 413, too_large)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._reject("too_large", 413, too_large)
        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, ValueError) as exc:
            return self._reject("malformed", 400, f"body is not JSON: {exc}")
        try:
            notification = self.record(payload, len(body))
        except PayloadError as exc:
            return self._reject("malformed", 400, str(exc))
        log.info("notification %d: %s %s (%d alerts) via %s", notification["id"], notification["status"],
                 notification["commonLabels"].get("alertname", "?"), len(notification["alerts"]),
                 notification["receiver"])
        return web.json_response({"id": notification["id"]})

    async def _get_alerts(self, request: web.Request) -> web.Response:
        query = request.query
        status = query.get("status")
        if status is not None and status not in STATUSES:
            return _error(400, f"status must be one of {', '.join(STATUSES)}")
        try:
            since = int(query.get("since", "0"))
        except ValueError:
            return _error(400, "since must be an integer notification id")
        found = self.query(alertname=query.get("alertname"), status=status, receiver=query.get("receiver"),
                           since=since)
        return web.json_response({"count": len(found), "notifications": found})

    async def _delete_alerts(self, request: web.Request) -> web.Response:
        return web.json_response({"cleared": self.clear()})

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _metrics(self, request: web.Request) -> web.Response:
        response = web.Response(body=generate_latest(self.registry))
        response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        response.charset = "utf-8"
        return response

    # -- lifecycle --------------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on ``host:port`` (0: a free port, see :attr:`port`)."""
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, host, port)
        await self._site.start()
        log.info("alert sink listening on %s:%d", host, self.port)

    @property
    def port(self) -> int:
        if self._runner is None or not self._runner.addresses:
            raise RuntimeError("the sink is not started")
        return self._runner.addresses[0][1]

    async def close(self) -> None:
        if self._runner is not None:
            started = time.monotonic()
            await self._runner.cleanup()
            self._runner = None
            log.info("alert sink stopped in %.2f s", time.monotonic() - started)
