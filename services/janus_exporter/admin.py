"""Asynchronous client of the Janus Admin API (HTTP transport), with bounded concurrency.

Every failure becomes an ``AdminError`` whose ``reason`` is one of ``ERROR_REASONS``; those
reasons are the values of ``janus_exporter_scrape_errors_total{reason}``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import aiohttp

ERROR_REASONS = ("timeout", "connection", "bad_reply", "janus_error")


class AdminError(Exception):
    """An Admin API request failed; ``reason`` is one of ``ERROR_REASONS``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class AdminClient:
    """Sends Admin API requests to one Janus node, at most ``concurrency`` at a time."""

    def __init__(self, url: str, secret: str, *, concurrency: int = 8) -> None:
        self.url = url.rstrip("/")
        self._secret = secret
        self._limit = asyncio.Semaphore(concurrency)
        self._transactions = itertools.count(1)
        self._session: aiohttp.ClientSession | None = None
        self._concurrency = concurrency

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._concurrency, force_close=False)
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(self, janus: str, *, session_id: int | None = None, handle_id: int | None = None,
                      **fields: Any) -> dict[str, Any]:
        """One request (``list_sessions``, ``handle_info``, ...); return Janus's ``success`` reply."""
        url = self.url
        if session_id is not None:
            url += f"/{session_id}"
            if handle_id is not None:
                url += f"/{handle_id}"
        body = {"janus": janus, "transaction": f"x{next(self._transactions)}", "admin_secret": self._secret,
                **fields}
        async with self._limit:
            try:
                async with self._http().post(url, json=body) as reply:
                    text = await reply.read()
            except (aiohttp.ClientConnectionError, OSError) as exc:
                raise AdminError("connection", f"{janus}: cannot reach {self.url}: {exc}") from exc
            except aiohttp.ClientError as exc:
                raise AdminError("bad_reply", f"{janus}: HTTP error from {self.url}: {exc}") from exc
        try:
            answer = json.loads(text)
        except ValueError as exc:
            raise AdminError("bad_reply", f"{janus}: reply is not JSON: {text[:80]!r}") from exc
        if not isinstance(answer, dict):
            raise AdminError("bad_reply", f"{janus}: reply is not a JSON object: {text[:80]!r}")
        if answer.get("janus") == "error":
            error = answer.get("error") or {}
            raise AdminError("janus_error", f"{janus}: Janus error {error.get('code')}: {error.get('reason')}")
        if answer.get("janus") not in ("success", "pong"):
            raise AdminError("bad_reply", f"{janus}: unexpected reply {str(answer)[:80]}")
        return answer


def classify(exc: BaseException) -> str:
    """The ``reason`` label for any exception a sweep can end with."""
    if isinstance(exc, AdminError):
        return exc.reason
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return "timeout"
    return "bad_reply"
