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


def announced(*handles: int) -> MediaLedger:
    """A ledger that saw ``handles`` created (their counters start at zero)."""
    ledger = MediaLedger()
    for handle in handles:
        ledger.announce(handle, now=0)
    return ledger


def test_the_ledger_adds_deltas_per_handle_and_stream():
    ledger = announced(1, 2)
    for sample in (nacks(1, 5), nacks(1, 8), nacks(2, 3), nacks(1, 2, stream=0), nacks(2, 3)):
        ledger.record(sample)
    assert ledger.totals[NACKS_IN_VIDEO] == 8 + 3 + 2


def test_a_counter_that_goes_back_is_a_reset_and_the_total_still_grows():
    ledger = announced(1)
    for sample in (nacks(1, 10), nacks(1, 4), nacks(1, 6)):
        ledger.record(sample)
    assert ledger.totals[NACKS_IN_VIDEO] == 10 + 4 + 2
    assert ledger.resets == 1


def test_cumulative_loss_that_goes_down_is_not_a_reset_and_counts_from_its_high_water_mark():
    ledger = announced(1)
    lost = ("sfu_packets_lost_total", ("remote", "video"))
    for value in (40, 38, 39, 41):  # RTCP's cumulative loss falls when late packets arrive
        ledger.record(StreamSample(1, 1, "video", {lost: value}, None))
    assert ledger.totals[lost] == 41
    assert ledger.resets == 0


def test_a_stream_whose_counters_restart_counts_its_loss_from_zero_too():
    ledger = announced(1)
    lost = ("sfu_packets_lost_total", ("remote", "video"))
    ledger.record(StreamSample(1, 1, "video", {NACKS_IN_VIDEO: 100, lost: 40}, None))
    ledger.record(StreamSample(1, 1, "video", {NACKS_IN_VIDEO: 3, lost: 2}, None))  # Janus counts this stream anew
    assert (ledger.totals[NACKS_IN_VIDEO], ledger.totals[lost]) == (100 + 3, 40 + 2)
    assert ledger.resets == 1


def test_the_first_sample_of_a_handle_never_announced_is_its_baseline_not_its_history():
    ledger = announced(2)
    ledger.record(nacks(1, 5000))  # a call older than the exporter: 5000 NACKs happened before we watched
    ledger.record(nacks(2, 7))  # a handle created while we watched counts from zero
    assert ledger.totals[NACKS_IN_VIDEO] == 7
    ledger.record(nacks(1, 5004))
    ledger.record(nacks(1, 2, stream=0))  # a stream of an unannounced handle: its baseline too
    assert ledger.totals[NACKS_IN_VIDEO] == 7 + 4
    assert ledger.baselines == 2
    assert ledger.tracked_handles == 2


def test_a_retired_handle_keeps_its_contribution_and_is_no_longer_tracked():
    ledger = announced(1, 2)
    ledger.record(nacks(1, 10), now=0)
    ledger.record(nacks(2, 1), now=50)
    ledger.retire_silent(older_than=20)
    assert ledger.tracked_handles == 1
    assert ledger.totals[NACKS_IN_VIDEO] == 11
    # Heard again after it was forgotten (Janus stalled, events were lost): a baseline, so the
    # 10 NACKs already counted are not added a second time.
    ledger.record(nacks(1, 12), now=60)
    assert ledger.totals[NACKS_IN_VIDEO] == 11
    ledger.record(nacks(1, 15), now=65)
    assert ledger.totals[NACKS_IN_VIDEO] == 14


def test_an_announced_handle_without_media_is_forgotten_after_the_silence_too():
    ledger = announced(1)
    ledger.retire_silent(older_than=20)
    ledger.record(nacks(1, 9), now=30)
    assert ledger.totals.get(NACKS_IN_VIDEO, 0) == 0


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


def attached(handle: int) -> dict:
    return {"type": 2, "handle_id": handle, "event": {"name": "attached", "plugin": "janus.plugin.videoroom"}}


def test_the_combined_array_shape_and_the_single_shape_both_count():
    sink = EventSink(ledger := MediaLedger(), pcs := PeerConnections())
    combined, single = load("events-media-3-combined.json"), load("events-media-stats-video.json")
    assert sink.accept([attached(combined["handle_id"]), attached(single["handle_id"]), combined, single]) == 4
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
    no_counter = {"type": 32, "subtype": 3, "event": {"media": "video"}}
    understood = sink.accept([attached(good["handle_id"]), "text", no_counter, None, good])
    assert understood == 2
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
