"""What the node's shaped link does, from ``tc -s qdisc`` (reading qdisc stats needs no capability).

The link is the bfifo leaf ``janus_node.link`` puts under the node's htb class (handle ``10:`` in a
Compose pod, ``10:``..``40:`` natively, where the four nodes share one device). ``read`` finds it on
any device of the exporter's network namespace and returns its counters, plus the class's rate
from ``tc class show`` (its JSON form is broken in iproute2 6.1: the text is parsed).
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass

RATE_UNITS = {"bit": 1, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9, "tbit": 1e12}


class LinkUnreadable(RuntimeError):
    """``tc`` is missing or failed, or the node's qdisc is not there (the link is not shaped)."""


@dataclass(frozen=True)
class LinkSample:
    sent_bytes: int
    sent_packets: int
    dropped_packets: int
    backlog_bytes: int
    backlog_packets: int
    limit_bytes: int | None
    rate_bits_per_second: float | None


def parse_rate(text: str) -> float:
    """``6Mbit`` -> 6e6 (tc's units are SI unless -iec)."""
    match = re.fullmatch(r"([\d.]+)([KMGT]?bit)", text, re.IGNORECASE)
    if not match:
        raise ValueError(f"not a tc rate: {text!r}")
    return float(match.group(1)) * RATE_UNITS[match.group(2).lower()]


def find(qdiscs: list[dict], handle: str, classes: str = "") -> LinkSample:
    """The sample of the qdisc ``handle`` in ``tc -s -j qdisc show`` output (``classes``: ``tc class show``)."""
    for qdisc in qdiscs:
        if qdisc.get("handle") == handle:
            rate = None
            parent = qdisc.get("parent")
            for line in classes.splitlines():
                match = re.search(rf"^class htb {re.escape(parent or '?')} .*?\brate (\S+)", line)
                if match:
                    rate = parse_rate(match.group(1))
            return LinkSample(sent_bytes=int(qdisc.get("bytes", 0)), sent_packets=int(qdisc.get("packets", 0)),
                              dropped_packets=int(qdisc.get("drops", 0)), backlog_bytes=int(qdisc.get("backlog", 0)),
                              backlog_packets=int(qdisc.get("qlen", 0)),
                              limit_bytes=(qdisc.get("options") or {}).get("limit"), rate_bits_per_second=rate)
    raise LinkUnreadable(f"no qdisc {handle} (the node's link is not shaped)")


async def _tc(*args: str) -> str:
    try:
        process = await asyncio.create_subprocess_exec("tc", *args, stdout=asyncio.subprocess.PIPE,
                                                       stderr=asyncio.subprocess.PIPE)
    except OSError as exc:
        raise LinkUnreadable(f"cannot run tc: {exc}") from exc
    async with asyncio.timeout(2):
        out, err = await process.communicate()
    if process.returncode != 0:
        raise LinkUnreadable(f"tc {' '.join(args)}: {err.decode(errors='replace').strip()}")
    return out.decode()


async def read(handle: str) -> LinkSample:
    """The node's link now; raises ``LinkUnreadable``."""
    try:
        qdiscs = json.loads(await _tc("-s", "-j", "qdisc", "show") or "[]")
    except (ValueError, TimeoutError) as exc:
        raise LinkUnreadable(f"tc -s -j qdisc show: {exc}") from exc
    sample = find(qdiscs, handle)
    dev = next(q["dev"] for q in qdiscs if q.get("handle") == handle)
    try:
        classes = await _tc("class", "show", "dev", dev)
    except (LinkUnreadable, TimeoutError):
        return sample
    return find(qdiscs, handle, classes)
