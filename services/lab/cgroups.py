"""CPU limits for native components, like Compose's ``cpus:``, through the cgroup v1 ``cpu`` controller.

``CpuLimit.create("sfu-node-04", 1.0)`` makes ``/sys/fs/cgroup/cpu/sfulab/sfu-node-04`` with a CFS
quota of one core; ``add(pid)`` moves a process (all its threads) into it. Where the controller is
missing or not writable (cgroup v2 only, not root, a container), ``available()`` says why and the
stack runs without limits.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from lab.netns import INSTANCE_SUFFIX

CPU_ROOT = Path("/sys/fs/cgroup/cpu")
GROUP = f"sfulab{INSTANCE_SUFFIX}"  # one group per native stack (LAB_INSTANCE)
PERIOD_US = 100_000


def available(root: Path = CPU_ROOT) -> tuple[bool, str]:
    """Whether CPU limits can be applied here, and a sentence saying so."""
    if not (root / "cpu.cfs_quota_us").exists():
        return False, f"no cgroup v1 cpu controller at {root}: components run without CPU limits"
    if not os.access(root, os.W_OK):
        return False, f"{root} is not writable (run as root): components run without CPU limits"
    return True, f"CPU limits through {root}/{GROUP}"


@dataclass(frozen=True)
class CpuLimit:
    path: Path
    cpus: float

    @classmethod
    def create(cls, name: str, cpus: float, root: Path = CPU_ROOT) -> CpuLimit:
        path = root / GROUP / name
        path.mkdir(parents=True, exist_ok=True)
        (path / "cpu.cfs_period_us").write_text(str(PERIOD_US))
        (path / "cpu.cfs_quota_us").write_text(str(int(cpus * PERIOD_US)))
        return cls(path, cpus)

    def add(self, pid: int) -> None:
        (self.path / "cgroup.procs").write_text(str(pid))

    def throttled_seconds(self) -> float:
        """Time the group's processes waited for quota (``cpu.stat`` throttled_time)."""
        for line in (self.path / "cpu.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "throttled_time":
                return int(value) / 1e9
        return 0.0

    def remove(self) -> None:
        """Remove the group once its processes are gone (the kernel refuses while any remain)."""
        with contextlib.suppress(OSError):
            self.path.rmdir()


def remove_all(root: Path = CPU_ROOT) -> None:
    """Remove every empty group the lab left (after ``lab down``)."""
    base = root / GROUP
    if not base.is_dir():
        return
    for child in base.iterdir():
        if child.is_dir():
            with contextlib.suppress(OSError):
                child.rmdir()
    with contextlib.suppress(OSError):
        base.rmdir()
