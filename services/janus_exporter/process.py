"""CPU, memory and threads of the Janus process, read from ``/proc`` by PID.

The PID comes from a pid file (``janus -p FILE``) or, without one, from the process name: in
Compose the exporter shares the Janus container's PID namespace, so ``janus`` is the only match.
``cpu_usage_percent`` is the CPU used since the previous reading, as a percentage of the node's
budget in cores (100 = the whole ``cpus:`` limit).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class ProcessSample:
    pid: int
    cpu_seconds: float
    resident_bytes: int
    threads: int
    start_ticks: int


def read_stat(pid: int, proc: Path = Path("/proc")) -> ProcessSample:
    """Parse ``/proc/PID/stat``; raises ``OSError`` if the process is gone."""
    text = (proc / str(pid) / "stat").read_text()
    fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) "; comm may contain spaces
    # fields[0] is field 3 (state) of proc(5): utime 14, stime 15, num_threads 20, starttime 22, rss 24.
    return ProcessSample(
        pid=pid,
        cpu_seconds=(int(fields[11]) + int(fields[12])) / CLOCK_TICKS,
        threads=int(fields[17]),
        start_ticks=int(fields[19]),
        resident_bytes=int(fields[21]) * PAGE_SIZE,
    )


def find_by_name(name: str, proc: Path = Path("/proc")) -> int | None:
    """The oldest process whose ``comm`` is ``name``."""
    found: list[tuple[int, int]] = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() == name:
                found.append((read_stat(int(entry.name), proc).start_ticks, int(entry.name)))
        except OSError:
            continue
    return min(found)[1] if found else None


class JanusProcess:
    """Finds the Janus process and reports its resource use."""

    def __init__(self, *, budget_cores: float, pidfile: str | None = None, name: str = "janus",
                 proc: Path = Path("/proc")) -> None:
        self.budget_cores = budget_cores
        self.pidfile = Path(pidfile) if pidfile else None
        self.name = name
        self.proc = proc
        self._previous: tuple[float, ProcessSample] | None = None
        self.problem: str | None = None

    def _pid(self) -> int | None:
        if self.pidfile is not None:
            try:
                return int(self.pidfile.read_text().strip())
            except (OSError, ValueError) as exc:
                self.problem = f"pid file {self.pidfile}: {exc}"
                return None
        pid = find_by_name(self.name, self.proc)
        if pid is None:
            self.problem = f"no process named {self.name!r}"
        return pid

    def sample(self) -> tuple[ProcessSample, float | None] | None:
        """The current reading and CPU use since the previous one (percent of budget), or None."""
        pid = self._previous[1].pid if self._previous else self._pid()
        if pid is None:
            return None
        try:
            current = read_stat(pid, self.proc)
        except (OSError, ValueError, IndexError):
            self._previous = None  # the process is gone or was replaced: look it up again next time
            pid = self._pid()
            if pid is None:
                return None
            try:
                current = read_stat(pid, self.proc)
            except (OSError, ValueError, IndexError) as exc:
                self.problem = f"pid {pid}: {exc}"
                return None
        now = time.monotonic()
        percent = None
        if self._previous is not None and self._previous[1].start_ticks == current.start_ticks:
            elapsed = now - self._previous[0]
            if elapsed > 0:
                used = max(0.0, current.cpu_seconds - self._previous[1].cpu_seconds)
                percent = 100.0 * used / elapsed / self.budget_cores
        self._previous = (now, current)
        self.problem = None
        return current, percent
