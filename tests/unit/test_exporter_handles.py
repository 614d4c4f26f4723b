from pathlib import Path

from signaling.exporter_handles import parse_active_handles

FIXTURE = Path(__file__).with_name("fixtures") / "exporter_metrics.txt"


def test_reads_active_handles_from_an_exporter_exposition():
    assert parse_active_handles(FIXTURE.read_text()) == 503


def test_an_exposition_without_the_metric_gives_no_reading():
    assert parse_active_handles("# TYPE janus_up gauge\njanus_up 0\n") is None


def test_a_labelled_metric_is_summed_over_its_series():
    text = 'sfu_active_handles{loop="1"} 3\nsfu_active_handles{loop="2"} 4\n'
    assert parse_active_handles(text) == 7
