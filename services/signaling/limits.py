"""What one stranger may hold: connection caps (in total and per source address) and failed-join throttling.

A source address is the TCP peer's IPv4 address, or the /64 network of an IPv6 one (a single
host usually has a whole /64). ``ConnectionCaps`` counts the TCP connections to the WebSocket
port from accept until they are gone, whatever their state (handshake, open, closing);
``JoinThrottle`` counts refused joins per source in a window and, once one reaches its limit,
refuses every join from that source for a while. Both are plain objects; the server and
connection code apply them.
"""

from __future__ import annotations

import ipaddress
import logging
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)
FD_RESERVE = 1024  # descriptors beyond the cap: Janus, exporters, admin, connections refused but not yet gone
SERVER_FULL, ADDRESS_FULL, JOIN_TIMEOUT = "server_full", "address_full", "join_timeout"
REFUSALS = (SERVER_FULL, ADDRESS_FULL, JOIN_TIMEOUT)  # reasons of signaling_protocol_errors_total
JOIN_TIMEOUT_CLOSE_CODE = 4408  # 4000 + HTTP 408 Request Timeout, as graphql-ws does


def source_key(host: str) -> str:
    """The source an address belongs to: an IPv4 address, or an IPv6 /64 (``2001:db8::/64``)."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host  # not an IP (a Unix socket path): its own source
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class ConnectionCaps:
    """At most ``total`` connections, and ``per_source`` from one source."""

    def __init__(self, total: int, per_source: int) -> None:
        self.total = total
        self.per_source = per_source
        self.open = 0
        self.by_source: dict[str, int] = {}

    def admit(self, source: str) -> str | None:
        """Count a new connection from ``source`` and return None, or return why it is refused."""
        if self.by_source.get(source, 0) >= self.per_source:
            return ADDRESS_FULL
        if self.open >= self.total:
            return SERVER_FULL
        self.open += 1
        self.by_source[source] = self.by_source.get(source, 0) + 1
        return None

    def release(self, source: str) -> None:
        self.open -= 1
        left = self.by_source[source] - 1
        if left:
            self.by_source[source] = left
        else:
            del self.by_source[source]


@dataclass
class _Count:
    started: float  # the first refused join of the current window
    refused: int = 0
    throttled_until: float = 0.0


class JoinThrottle:
    """``limit`` refused joins from one source within ``window`` seconds throttle it for ``hold`` seconds.

    A source's window opens at its first refused join and lasts ``window`` seconds; the refusal
    that reaches ``limit`` in it starts the hold: ``retry_after`` is then positive, and the server
    refuses every join from the source without reading its token. Joins refused by the hold are not
    counted, so the hold ends ``hold`` seconds after it started, however hard the source keeps trying.
    """

    def __init__(self, limit: int, window: float, hold: float, *,
                 clock: Callable[[], float] = time.monotonic, max_sources: int = 100_000) -> None:
        self.limit = limit
        self.window = window
        self.hold = hold
        self.clock = clock
        self.max_sources = max_sources
        self.counts: dict[str, _Count] = {}

    def retry_after(self, source: str) -> float:
        """Seconds until ``source`` may join again; 0 when it is not throttled."""
        count = self.counts.get(source)
        return max(0.0, count.throttled_until - self.clock()) if count is not None else 0.0

    def refused(self, source: str) -> bool:
        """Count one refused join from ``source``; True when it starts the source's hold."""
        now = self.clock()
        count = self.counts.get(source)
        if count is None or now - count.started >= self.window:
            if count is None and len(self.counts) >= self.max_sources:
                self._forget_idle(now)
            count = self.counts[source] = _Count(now, throttled_until=count.throttled_until if count else 0.0)
        count.refused += 1
        if count.refused < self.limit:
            return False
        count.refused, count.started, count.throttled_until = 0, now, now + self.hold
        log.warning("throttling joins from %s for %g s: %d refused joins within %g s",
                    source, self.hold, self.limit, self.window)
        return True

    def _forget_idle(self, now: float) -> None:
        """Drop sources whose window and hold are over (keeps the table bounded under a spray of sources)."""
        for source in [s for s, c in self.counts.items()
                       if now - c.started >= self.window and c.throttled_until <= now]:
            del self.counts[source]


def fit_descriptor_limit(max_connections: int) -> int:
    """Raise the soft open-files limit so ``max_connections`` fit; return the cap that does fit.

    A process out of descriptors cannot accept anyone (asyncio pauses accepting), so when the hard
    limit is too low the connection cap comes down to it, with a warning naming both numbers.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max_connections + FD_RESERVE
    if soft < wanted and (hard == resource.RLIM_INFINITY or soft < hard):
        soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    if soft >= wanted:
        return max_connections
    fitted = max(1, soft - FD_RESERVE)
    log.warning("open-files limit %d leaves room for %d connections, not SIGNALING_MAX_CONNECTIONS=%d: "
                "capping at %d (raise the limit, e.g. ulimit -n or Compose ulimits.nofile)",
                soft, fitted, max_connections, fitted)
    return fitted
