"""Lab 2's scratch copy of the signaling service's room metrics: copy it, add a label, run it.

    cp labs/scratch/lab2_rooms.py labs/scratch/my_rooms.py   # your copy
    # edit LABELS below in your copy, then:
    .venv/bin/python labs/scratch/my_rooms.py                # leave it running; Ctrl-C stops it

It simulates rooms opening (one every --every seconds, --size participants each) and closing
(after --lifetime seconds), with the signaling service's metric names, and serves /metrics where
the running lab's Prometheus scrapes it (job loadtest_bots, service="lab2-scratch"). Needs `lab up`.
"""

from __future__ import annotations

import argparse
import random
import time

from prometheus_client import CollectorRegistry, Gauge, Histogram, start_http_server

from lab.labs.lab2_cardinality import registered_scratch_target
from lab.labs.signaling_names import JOIN_DURATION, PARTICIPANTS_ACTIVE
from signaling.metrics import LATENCY_BUCKETS

# Lab 2: add "room_id" here. Every metric below then carries the room's name as a label.
LABELS = ["region"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--every", type=float, default=2.0, help="seconds between new rooms (default: %(default)s)")
    parser.add_argument("--size", type=int, default=4, help="participants per room (default: %(default)s)")
    parser.add_argument("--lifetime", type=float, default=30.0, help="seconds a room lives (default: %(default)s)")
    args = parser.parse_args()
    registry = CollectorRegistry()
    participants = Gauge(PARTICIPANTS_ACTIVE, "Participants joined to a room.", LABELS, registry=registry)
    joins = Histogram(JOIN_DURATION, "Time from a join request to the joined reply.", LABELS,
                      buckets=LATENCY_BUCKETS, registry=registry)
    with registered_scratch_target() as (host, port):
        start_http_server(port, addr=host, registry=registry)
        print(f"scratch metrics on http://{host}:{port}/metrics with labels {LABELS}; Ctrl-C stops", flush=True)
        opened: dict[str, float] = {}
        number = 0
        try:
            while True:
                number += 1
                room = f"room-{number}"
                opened[room] = time.monotonic()
                labels = {"region": "local", "room_id": room}
                chosen = {name: labels[name] for name in LABELS}
                participants.labels(**chosen).inc(args.size)
                for _ in range(args.size):
                    joins.labels(**chosen).observe(random.uniform(0.01, 0.2))
                for name, since in list(opened.items()):
                    if time.monotonic() - since > args.lifetime:
                        closed = {"region": "local", "room_id": name}
                        participants.labels(**{n: closed[n] for n in LABELS}).dec(args.size)
                        del opened[name]
                time.sleep(args.every)
        except KeyboardInterrupt:
            print("scratch copy stopped; its target is unregistered")


if __name__ == "__main__":
    main()
