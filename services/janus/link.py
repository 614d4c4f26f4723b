"""A node's media link: its Janus's outgoing RTP/RTCP through a capacity of its own, with ``tc``.

One device may carry several nodes (natively the four share the lab namespace's veth end; in Compose
each pod has its own ``eth0`` and one node). Every shaped node gets a *slot*: an htb class ``1:S``
at ``kbit`` (rate = ceil, it borrows nothing) with a bounded ``bfifo`` leaf (handle ``S0:``, as
many bytes as the link sends in ``queue_ms``: a delay bound, whatever the packet sizes), matched
by u32 filters on UDP source ports of the node's ``JANUS_RTP_PORT_RANGE`` (split into aligned
blocks, one filter each). Anything else (signaling,
Admin API, scrapes) matches no filter and leaves the htb root unshaped (no ``default`` class).
When the offered RTP exceeds ``kbit``, the queue fills and its tail is dropped: the loss is what
the link drops, and the exporter reads it from ``tc -s qdisc`` (``janus_exporter.link``).
Standard library of ``python3-minimal`` only (no dataclasses): the pod entrypoint runs it.

    python3 -m janus_node.link --dev eth0 --slot 1 --kbit 6000 --ports 20000-40000
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import NamedTuple

from janus_node.render import DEFAULTS

# The leaf's bound, in time at the link's rate: it holds a Janus burst after a CPU-throttled period
# (cgroup quota: 100 ms) without dropping it, so only a link offered more than it carries drops.
QUEUE_MS = 200


def leaf_handle(slot: int) -> str:
    """The bfifo leaf of slot ``slot`` (tc handles are hex: slot 1 -> ``10:``)."""
    if not 1 <= slot <= 15:
        raise ValueError("slot must be 1-15")
    return f"{slot:x}0:"


def port_blocks(low: int, high: int) -> list[tuple[int, int]]:
    """``low``-``high`` (inclusive) as aligned (value, mask) blocks, as a CIDR range splits into prefixes."""
    if not 0 <= low <= high <= 0xFFFF:
        raise ValueError(f"bad port range {low}-{high}")
    blocks = []
    while low <= high:
        size = low & -low if low else 0x10000
        while size > high - low + 1:
            size //= 2
        blocks.append((low, 0xFFFF & ~(size - 1)))
        low += size
    return blocks


def parse_ports(text: str) -> tuple[int, int]:
    low, _, high = text.partition("-")
    return int(low), int(high or low)


class Link(NamedTuple):
    """One node's shaped egress."""

    slot: int
    kbit: int
    ports: tuple[int, int]
    queue_ms: int = QUEUE_MS

    @property
    def queue_bytes(self) -> int:
        return self.kbit * self.queue_ms // 8


def commands(dev: str, links: Sequence[Link]) -> list[list[str]]:
    """The ``tc`` argv lists that shape ``dev`` for ``links`` (replacing its root qdisc)."""
    argv = [["tc", "qdisc", "replace", "dev", dev, "root", "handle", "1:", "htb"]]
    for link in links:
        if link.kbit <= 0 or link.queue_ms <= 0:
            raise ValueError("kbit and queue_ms must be positive")
        classid = f"1:{link.slot:x}"
        argv.append(["tc", "class", "add", "dev", dev, "parent", "1:", "classid", classid, "htb",
                     "rate", f"{link.kbit}kbit", "ceil", f"{link.kbit}kbit"])
        argv.append(["tc", "qdisc", "add", "dev", dev, "parent", classid, "handle", leaf_handle(link.slot),
                     "bfifo", "limit", str(link.queue_bytes)])
        for value, mask in port_blocks(*link.ports):
            argv.append(["tc", "filter", "add", "dev", dev, "parent", "1:", "protocol", "ip", "prio", "1", "u32",
                         "match", "ip", "protocol", "17", "0xff", "match", "ip", "sport", str(value), f"0x{mask:04x}",
                         "flowid", classid])
    return argv


def apply(dev: str, links: Sequence[Link], prefix: Sequence[str] = (),
          run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run) -> None:
    """Shape ``dev`` (``prefix``: e.g. ``ip netns exec NAME``); raises ``RuntimeError`` with tc's message."""
    for argv in commands(dev, links):
        done = run([*prefix, *argv], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Shape a node's RTP egress (htb class + bounded bfifo).")
    parser.add_argument("--dev", required=True)
    parser.add_argument("--slot", type=int, default=1)
    parser.add_argument("--kbit", type=int, required=True)
    parser.add_argument("--ports", default=DEFAULTS["JANUS_RTP_PORT_RANGE"], help="the node's RTP port range")
    parser.add_argument("--queue-ms", type=int, default=QUEUE_MS, help="queue bound in ms at the link's rate")
    args = parser.parse_args(argv)
    try:
        apply(args.dev, [Link(args.slot, args.kbit, parse_ports(args.ports), args.queue_ms)])
    except (RuntimeError, ValueError, OSError) as exc:
        print(f"janus_node.link: {exc}", file=sys.stderr)
        return 1
    print(f"janus_node.link: {args.dev} slot {args.slot}: RTP from ports {args.ports} at {args.kbit} kbit/s, "
          f"queue {args.queue_ms} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
