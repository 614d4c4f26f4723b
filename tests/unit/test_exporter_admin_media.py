"""Media from ``handle_info`` (``JANUS_EXPORTER_MEDIA_SOURCE=admin``): which handles count from zero.

A small stand-in for the Admin API answers the sweep with a captured ``handle_info`` whose age
(Janus's ``current_time - created``) the test sets: pure accounting logic, no Janus needed.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from janus_exporter import config as exporter_config
from janus_exporter.exporter import Exporter
from janus_exporter.inventory import handle_age_seconds
from janus_exporter.process import JanusProcess

SAMPLE = json.loads((Path(__file__).parent / "fixtures" / "janus-samples" /
                     "admin-handle_info-subscriber-loss-t30.json").read_text())["info"]
STATS_EVENT = json.loads((Path(__file__).parent / "fixtures" / "janus-samples" /
                          "events-media-stats-video.json").read_text())
NACKS_IN_VIDEO = ("sfu_nacks_total", ("received", "video"))


def info_aged(seconds: float, nacks: int) -> dict[str, Any]:
    """The captured subscriber's ``handle_info``, created ``seconds`` ago, with ``nacks`` NACKs on its video."""
    info = copy.deepcopy(SAMPLE)
    info["created"] = info["current_time"] - int(seconds * 1e6)
    for entry in info["webrtc"]["media"].values():
        if entry.get("type") == "video":
            entry["stats"]["in"]["nacks"] = nacks
    return info


class OneSessionJanus:
    """Answers a sweep: one session holding the handles of ``self.handles`` (id -> handle_info)."""

    def __init__(self) -> None:
        self.handles: dict[int, dict[str, Any]] = {}

    async def request(self, janus: str, **fields: Any) -> dict[str, Any]:
        replies = {"ping": {}, "list_sessions": {"sessions": [1]}, "loops_info": {"loops": []},
                   "message_plugin": {"response": {"list": []}}, "list_handles": {"handles": list(self.handles)}}
        if janus == "handle_info":
            return {"info": self.handles[fields["handle_id"]]}
        return replies[janus]

    async def close(self) -> None:
        pass


def admin_exporter(janus: OneSessionJanus) -> Exporter:
    config = exporter_config.load({"JANUS_ADMIN_SECRET": "x" * 12, "JANUS_EXPORTER_MEDIA_SOURCE": "admin"})
    return Exporter(config, client=janus,  # type: ignore[arg-type]
                    process=JanusProcess(budget_cores=1, pidfile="/nonexistent/janus.pid"))


def test_the_age_of_a_handle_is_read_from_janus_own_clock():
    assert handle_age_seconds(info_aged(90, 0)) == 90
    assert handle_age_seconds({"created": 5}) is None
    assert handle_age_seconds({"created": "5", "current_time": 9}) is None


async def test_handles_older_than_the_exporter_start_from_their_baseline_and_newer_ones_from_zero():
    janus = OneSessionJanus()
    janus.handles[11] = info_aged(3600, nacks=5000)  # in a call for an hour when the exporter starts
    exporter = admin_exporter(janus)
    await exporter.refresh()
    assert exporter.up
    assert exporter.ledger.totals.get(NACKS_IN_VIDEO, 0) == 0, "an hour of history is not a burst of NACKs"

    janus.handles[11] = info_aged(3615, nacks=5040)
    janus.handles[12] = info_aged(0, nacks=3)  # joined since the previous sweep
    await exporter.refresh()
    assert exporter.ledger.totals[NACKS_IN_VIDEO] == 40 + 3

    janus.handles[12] = info_aged(15, nacks=10)
    await exporter.refresh()
    assert exporter.ledger.totals[NACKS_IN_VIDEO] == 40 + 10


def test_stats_events_are_counted_but_not_applied_when_media_comes_from_the_admin_api():
    # Events lag the sweep: an event's older value after a sweep's newer one would read as a reset
    # and add the stream's whole history again.
    exporter = admin_exporter(OneSessionJanus())
    assert exporter.events.accept(STATS_EVENT) == 1
    assert exporter.events.received["media"] == 1
    assert exporter.ledger.totals == {} and exporter.ledger.tracked_handles == 0
