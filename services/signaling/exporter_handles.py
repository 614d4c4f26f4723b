"""Read ``sfu_active_handles`` from each SFU node's exporter, for the ``least_handles`` policy.

``parse_active_handles`` is pure (unit-tested on a text fixture); ``HandlesPoller`` fetches every
exporter each period and keeps readings that expire after three periods, so a dead exporter
makes its node's reading unknown rather than stale.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

log = logging.getLogger(__name__)
METRIC = "sfu_active_handles"


def parse_active_handles(text: str) -> float | None:
    """The value of ``sfu_active_handles`` in an exposition text (summed over series), or None."""
    total: float | None = None
    for family in text_string_to_metric_families(text):
        if family.name != METRIC:
            continue
        for sample in family.samples:
            if sample.name == METRIC:
                total = (total or 0.0) + sample.value
    return total


class HandlesPoller:
    """Polls ``{node: exporter_url}`` every ``period`` seconds."""

    def __init__(self, exporters: dict[str, str], period: float) -> None:
        self.exporters = exporters
        self.period = period
        self._readings: dict[str, tuple[float, float]] = {}
        self._task: asyncio.Task[None] | None = None

    def handles(self, node: str) -> float | None:
        reading = self._readings.get(node)
        if reading is None or time.monotonic() - reading[1] > 3 * self.period:
            return None
        return reading[0]

    def start(self) -> None:
        if self.exporters:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="handles-poller")

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def poll_once(self, session: aiohttp.ClientSession) -> None:
        async def one(node: str, url: str) -> None:
            try:
                async with session.get(url, timeout=aiohttp.ClientTimeout(total=self.period)) as resp:
                    resp.raise_for_status()
                    value = parse_active_handles(await resp.text())
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                log.debug("exporter of %s unreadable: %s", node, exc)
                return
            if value is None:
                log.warning("exporter of %s exposes no %s", node, METRIC)
                return
            self._readings[node] = (value, time.monotonic())

        await asyncio.gather(*(one(node, url) for node, url in self.exporters.items()))

    async def _run(self) -> None:
        async with aiohttp.ClientSession() as session:
            while True:
                await self.poll_once(session)
                await asyncio.sleep(self.period)
