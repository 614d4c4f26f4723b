"""Exporter settings and the Janus process reader."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from janus_exporter import config
from janus_exporter.process import JanusProcess, find_by_name, read_stat


def test_the_admin_secret_is_required_and_every_bad_value_is_named_at_once():
    with pytest.raises(config.ConfigError) as error:
        config.load({"JANUS_EXPORTER_PORT": "99999", "JANUS_EXPORTER_MEDIA_SOURCE": "guess",
                     "JANUS_EXPORTER_EVENT_SOURCES": "not-an-ip"})
    message = str(error.value)
    for name in ("JANUS_ADMIN_SECRET", "JANUS_EXPORTER_PORT", "JANUS_EXPORTER_MEDIA_SOURCE",
                 "JANUS_EXPORTER_EVENT_SOURCES"):
        assert name in message


def test_defaults_fill_everything_but_the_secret():
    loaded = config.load({"JANUS_ADMIN_SECRET": "s3cret-s3cret"})
    assert loaded.port == 9188 and loaded.media_source == "events" and loaded.deadline_seconds == 4
    assert loaded.cpu_budget_cores == os.cpu_count()
    assert [str(n) for n in loaded.event_sources] == ["127.0.0.1/32", "::1/128"]


def test_the_process_reader_reports_this_process_and_cpu_against_the_budget(tmp_path):
    (tmp_path / "pid").write_text(str(os.getpid()))
    reader = JanusProcess(budget_cores=0.5, pidfile=str(tmp_path / "pid"))
    first, percent = reader.sample()
    assert first.pid == os.getpid() and first.threads >= 1 and first.resident_bytes > 1_000_000
    assert percent is None  # no previous reading yet
    sum(i * i for i in range(300_000))  # burn a little CPU
    second, percent = reader.sample()
    assert second.cpu_seconds >= first.cpu_seconds
    assert percent is not None and percent >= 0


def test_a_missing_process_gives_no_reading_and_says_why(tmp_path):
    reader = JanusProcess(budget_cores=1, pidfile=str(tmp_path / "absent.pid"))
    assert reader.sample() is None
    assert "absent.pid" in (reader.problem or "")
    assert JanusProcess(budget_cores=1, name="no-such-process-name").sample() is None


def test_processes_are_found_by_name():
    me = read_stat(os.getpid())
    comm = Path(f"/proc/{os.getpid()}/comm").read_text().strip()
    found = find_by_name(comm)
    assert found is not None and read_stat(found).start_ticks <= me.start_ticks
