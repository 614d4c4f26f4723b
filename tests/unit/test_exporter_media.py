"""The media ledger and the event shapes Janus posts (samples from a real Janus 1.1.2 run)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from janus_exporter.admin import AdminError
from janus_exporter.events import EventSink
from janus_exporter.inventory import loop_handles, peer_connection_up, room_sizes
from janus_exporter.media import (
    BadSample,
    MediaLedger,
    PeerConnections,
    StreamSample,
    stream_from_event,
    streams_from_handle_info,
)

SAMPLES = Path(__file__).parent / "fixtures" / "janus-samples"
NACKS_IN_VIDEO = ("sfu_nacks_total", ("received", "video"))
BYTES_SENT_VIDEO = ("sfu_bytes_total", ("sent", "video"))


def load(name: str) -> dict:
    return json.loads((SAMPLES / name).read_text())


def nacks(handle: int, value: float, stream: int = 1) -> StreamSample:
    return StreamSample(handle, stream, "video", {NACKS_IN_VIDEO: value}, None)


def test_the_ledger_adds_deltas_per_handle_and_stream():
    ledger = MediaLedger()
    for sample in (nacks(1, 5), nacks(1, 8), nacks(2, 3), nacks(1, 2, stream=0), nacks(2, 3)):
        ledger.record(sample)
    assert ledger.totals[NACKS_IN_VIDEO] == 8 + 3 + 2


def test_a_counter_that_goes_back_is_a_reset_and_the_total_still_grows():
    ledger = MediaLedger()
    for sample in (nacks(1, 10), nacks(1, 4), nacks(1, 6)):
        ledger.record(sample)
    assert ledger.totals[NACKS_IN_VIDEO] == 10 + 4 + 2
    assert ledger.resets == 1


def test_a_retired_handle_keeps_its_contribution_and_is_no_longer_tracked():
    ledger = MediaLedger()
    ledger.record(nacks(1, 10), now=0)
    ledger.record(nacks(2, 1), now=50)
    ledger.retire_silent(older_than=20)
    assert ledger.tracked_handles == 1
    assert ledger.totals[NACKS_IN_VIDEO] == 11
    ledger.record(nacks(1, 12), now=60)  # the same id again counts from zero, not from 10
    assert ledger.totals[NACKS_IN_VIDEO] == 23


def test_a_stats_event_names_its_stream_media_and_counters():
    sample = stream_from_event(7, load("events-media-stats-video.json")["event"])
    assert (sample.handle, sample.stream, sample.media) == (7, 1, "video")
    assert sample.counters[BYTES_SENT_VIDEO] == 4420988
    assert sample.rtt_seconds is None  # Janus reports rtt 0 before the first receiver report


def test_handle_info_media_gives_the_same_counters_as_events():
    info = load("admin-handle_info-subscriber-loss-t30.json")["info"]
    video = [s for s in streams_from_handle_info(1, info) if s.media == "video"][0]
    assert video.counters[NACKS_IN_VIDEO] == 148
    assert video.counters[("sfu_packets_lost_total", ("remote", "video"))] == 44
    assert video.rtt_seconds == pytest.approx(0.005)
    assert peer_connection_up(info)


@pytest.mark.parametrize("bad", [{"media": "video", "nacks-received": -1}, {"media": "screen", "lost": 1},
                                 {"media": "video"}, {"media": "video", "lost": "7"}])
def test_a_stats_event_with_impossible_values_is_refused(bad):
    with pytest.raises(BadSample):
        stream_from_event(1, bad)


def test_the_combined_array_shape_and_the_single_shape_both_count():
    sink = EventSink(ledger := MediaLedger(), pcs := PeerConnections())
    combined = load("events-media-3-combined.json")
    assert sink.accept([combined, load("events-media-stats-video.json")]) == 2
    assert ledger.totals[("sfu_bytes_total", ("received", "audio"))] == 3558860
    assert ledger.totals[("sfu_bytes_total", ("received", "video"))] == 1308683
    assert ledger.totals[BYTES_SENT_VIDEO] == 4420988
    assert len(pcs) == 2  # media stats prove a PeerConnection is up


def test_slow_link_hangup_and_detach_events_are_applied():
    sink = EventSink(ledger := MediaLedger(), pcs := PeerConnections())
    hangup, detached = load("events-webrtc-6.json"), load("events-handle.json")
    pcs.up(hangup["handle_id"])
    pcs.up(detached["handle_id"])
    sink.accept([load("events-media-slowlink.json"), hangup, detached])
    assert ledger.slow_links == {("uplink", "audio"): 1}
    assert len(pcs) == 0
    assert sink.received["media"] == 1 and sink.received["webrtc"] == 1 and sink.received["handle"] == 1


def test_garbage_events_are_counted_as_malformed_and_do_not_stop_the_rest():
    sink = EventSink(ledger := MediaLedger(), PeerConnections())
    good = load("events-media-stats-video.json")
    understood = sink.accept(["text", {"type": 32, "subtype": 3, "event": {"media": "video"}}, None, good])
    assert understood == 1
    assert sink.rejected["malformed"] == 3
    assert ledger.totals[BYTES_SENT_VIDEO] == 4420988


def test_room_sizes_and_loop_handles_are_read_or_refused():
    reply = {"response": {"videoroom": "success", "list": [{"room": 1, "num_participants": 500},
                                                            {"room": 2, "num_participants": 3}]}}
    assert room_sizes(reply) == [500, 3]
    assert loop_handles({"loops": [{"id": 0, "handles": 4}, {"id": 1, "handles": 5}]}) == 9
    assert loop_handles(load("admin-loops_info.json")) is None  # no static loops: count per session instead
    with pytest.raises(AdminError):
        room_sizes({"response": {"list": [{"room": 1}]}})
