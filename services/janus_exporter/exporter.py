"""The exporter's state: one Admin sweep per scrape under a deadline, plus what events delivered.

``Exporter.refresh`` runs before every exposition: it sweeps the node (``inventory.sweep``), feeds
``handle_info`` media into the ledger when the Admin API is the media source (announcing handles
created since the previous sweep, whose counters start at zero), retires handles that went away,
and reads the Janus process and the node's shaped link (``tc -s qdisc``). A sweep that fails or
misses its deadline leaves no inventory (the collectors then expose ``janus_up 0`` and no inventory
gauges) and one log line.
"""

from __future__ import annotations

import asyncio
import logging
import time

from janus_exporter.admin import ERROR_REASONS, AdminClient, classify
from janus_exporter.config import Config
from janus_exporter.events import EventSink
from janus_exporter.inventory import Inventory, handle_age_seconds, peer_connection_up, sweep
from janus_exporter.link import LinkSample, LinkUnreadable
from janus_exporter.link import read as read_link
from janus_exporter.media import BadSample, MediaLedger, PeerConnections, streams_from_handle_info
from janus_exporter.process import JanusProcess, ProcessSample

log = logging.getLogger("janus_exporter")

# PeerConnections with no event for this many stats periods (and at least this long) are gone.
SILENT_PERIODS = 3
MIN_SILENT_SECONDS = 15.0
# A handle's last counter values outlive a silence this long (a stalled Janus, events lost on the
# way): heard again within it, it adds only what it gained; after it, its next sample is a baseline.
FORGET_SILENT_SECONDS = 300.0


class Exporter:
    """Everything the collectors read, refreshed once per scrape."""

    def __init__(self, config: Config, *, client: AdminClient | None = None,
                 process: JanusProcess | None = None, watching_since: float | None = None) -> None:
        """``watching_since``: monotonic time from which handles are new to the exporter (default: now;
        a replay of a captured run passes ``-math.inf``, as if the exporter had watched all along)."""
        self.config = config
        self.client = client or AdminClient(config.admin_url, config.admin_secret, concurrency=config.concurrency)
        self.process = process or JanusProcess(budget_cores=config.cpu_budget_cores, pidfile=config.pidfile,
                                               name=config.process_name)
        self.ledger = MediaLedger()
        self.peer_connections = PeerConnections()
        # With media from the Admin API, stats events (should Janus send them) must not feed the same
        # ledger: they lag the sweep, and a sweep value followed by an older event value reads as a reset.
        self.events = EventSink(self.ledger, self.peer_connections, media_stats=not self.media_from_admin)
        self.lock = asyncio.Lock()
        self.up = False
        self.inventory: Inventory | None = None
        self.peer_connections_active: int | None = None
        self.errors = dict.fromkeys(ERROR_REASONS, 0)
        self.scrape_duration_seconds = 0.0
        self.process_sample: ProcessSample | None = None
        self.cpu_usage_percent: float | None = None
        self.link: LinkSample | None = None
        self.link_problem: str | None = None
        self._last_problem: str | None = None
        self._watching_since = time.monotonic() if watching_since is None else watching_since

    @property
    def media_from_admin(self) -> bool:
        return self.config.media_source == "admin"

    async def refresh(self) -> None:
        started, sweep_started = time.perf_counter(), time.monotonic()
        try:
            async with asyncio.timeout(self.config.deadline_seconds):
                inventory = await sweep(self.client, handle_info=self.media_from_admin)
        except Exception as exc:  # noqa: BLE001 - any failure means "Janus is not answering properly"
            reason = classify(exc)
            self.errors[reason] += 1
            self.up, self.inventory, self.peer_connections_active = False, None, None
            problem = (f"deadline of {self.config.deadline_seconds:g} s passed" if reason == "timeout"
                       else str(exc) or type(exc).__name__)
            log.warning("janus_up=0 (%s): %s", reason, problem)
            self._last_problem = problem
        else:
            if self._last_problem is not None:
                log.info("janus_up=1: Janus answers again")
                self._last_problem = None
            self.up, self.inventory = True, inventory
            self.peer_connections_active = self._account_media(inventory)
            self._watching_since = sweep_started
        reading = self.process.sample()
        if reading is None:
            self.process_sample, self.cpu_usage_percent = None, None
            log.debug("no Janus process reading: %s", self.process.problem)
        else:
            self.process_sample, self.cpu_usage_percent = reading
        await self._read_link()
        self.scrape_duration_seconds = time.perf_counter() - started

    async def _read_link(self) -> None:
        if self.config.link_qdisc is None:
            return
        try:
            self.link = await read_link(self.config.link_qdisc)
        except LinkUnreadable as exc:
            if self.link_problem != str(exc):
                log.info("sfu_link_up=0: %s", exc)
            self.link, self.link_problem = None, str(exc)
        else:
            self.link_problem = None

    def _account_media(self, inventory: Inventory) -> int:
        """Bring the ledger up to date with this sweep; return the PeerConnections up."""
        if self.media_from_admin:
            up = 0
            # Created since the previous sweep started (which listed everything older): counting from zero.
            # Measured now, after the replies, so that a handle is never taken for older than it is.
            new_within = time.monotonic() - self._watching_since
            for handle, info in inventory.handle_infos.items():
                age = handle_age_seconds(info)
                if age is not None and age < new_within:
                    self.ledger.announce(handle)
                try:
                    for sample in streams_from_handle_info(handle, info):
                        self.ledger.record(sample)
                except BadSample as exc:
                    log.warning("handle_info of a handle not understood: %s", exc)
                up += peer_connection_up(info)
            self.ledger.retire_missing(inventory.handle_infos)
            return up
        if self.config.stats_period_seconds > 0:
            now, silent = time.monotonic(), SILENT_PERIODS * self.config.stats_period_seconds
            self.ledger.retire_silent(now - max(silent, FORGET_SILENT_SECONDS))
            self.peer_connections.expire(now - max(silent, MIN_SILENT_SECONDS))
        return len(self.peer_connections)

    async def close(self) -> None:
        await self.client.close()
