"""Captured Janus Admin replies and events (``capture.py``, a real run) give exactly the expected exposition.

Regenerate the expected files after an intended change with ``GOLDEN_UPDATE=1`` and read the diff.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

from janus_exporter import config as exporter_config
from janus_exporter.collectors import build_registry
from janus_exporter.exporter import Exporter
from janus_exporter.process import JanusProcess

RUN = Path(__file__).with_name("run1")
# Values that depend on the moment of the scrape, not on the captured input.
VOLATILE = re.compile(r"^((?:janus_exporter_scrape_duration_seconds|sfu_admin_api_rtt_seconds) ).*$", re.M)


class ReplayClient:
    """Answers Admin requests with the replies captured from a real Janus."""

    def __init__(self, exchanges: list[dict[str, Any]]) -> None:
        self.replies = {(e["request"], e["session_id"], e["handle_id"]): e["reply"] for e in exchanges}

    async def request(self, janus: str, *, session_id: int | None = None, handle_id: int | None = None,
                      **fields: Any) -> dict[str, Any]:
        return json.loads(json.dumps(self.replies[(janus, session_id, handle_id)]))

    async def close(self) -> None:
        pass


def fake_proc(tmp_path: Path) -> tuple[Path, Path]:
    """A /proc holding the captured ``stat`` of the Janus process, and a pid file naming it."""
    stat = (RUN / "janus.stat").read_text()
    pid = stat.split()[0]
    (tmp_path / "proc" / pid).mkdir(parents=True)
    (tmp_path / "proc" / pid / "stat").write_text(stat)
    (tmp_path / "janus.pid").write_text(pid)
    return tmp_path / "proc", tmp_path / "janus.pid"


async def exposition(media_source: str, tmp_path: Path) -> str:
    config = exporter_config.load({"JANUS_ADMIN_SECRET": "golden-secret", "JANUS_EXPORTER_MEDIA_SOURCE": media_source,
                                   "JANUS_EXPORTER_CPU_BUDGET_CORES": "1"})
    proc, pidfile = fake_proc(tmp_path)
    exporter = Exporter(config, client=ReplayClient(json.loads((RUN / "admin.json").read_text())),  # type: ignore[arg-type]
                        watching_since=-math.inf,  # as if it had watched the whole captured run
                        process=JanusProcess(budget_cores=1, pidfile=str(pidfile), proc=proc))
    if media_source == "events":
        for post in json.loads((RUN / "events.json").read_text()):
            exporter.events.accept(post)
    await exporter.refresh()
    text = generate_latest(build_registry(exporter)).decode()
    return VOLATILE.sub(r"\1<volatile>", text)


@pytest.mark.parametrize("media_source", ["events", "admin"])
async def test_captured_janus_output_renders_the_expected_exposition(media_source, tmp_path):
    expected_file = RUN / f"expected-{media_source}.prom"
    text = await exposition(media_source, tmp_path)
    if os.environ.get("GOLDEN_UPDATE"):
        expected_file.write_text(text)
    assert text == expected_file.read_text()


@pytest.mark.parametrize("media_source", ["events", "admin"])
async def test_the_exposition_passes_promtool_check_metrics(media_source, tmp_path):
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: run make deps"
    text = (await exposition(media_source, tmp_path)).replace("<volatile>", "0.001")
    result = await asyncio.to_thread(subprocess.run, [promtool, "check", "metrics"], input=text,
                                     capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout + result.stderr == "", result.stdout + result.stderr
