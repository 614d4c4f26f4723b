"""The node link's tc layout (janus_node.link) and the exporter's reading of tc output (janus_exporter.link)."""

from __future__ import annotations

import pytest

from janus_exporter.link import LinkUnreadable, find, parse_rate
from janus_node.link import Link, commands, leaf_handle, port_blocks


@pytest.mark.parametrize("low, high", [(20000, 20999), (23000, 23999), (20000, 40000), (1, 65535), (5, 5)])
def test_port_blocks_cover_exactly_the_range(low, high):
    covered = set()
    for value, mask in port_blocks(low, high):
        size = (~mask & 0xFFFF) + 1
        assert value & ~mask & 0xFFFF == 0, "a block is aligned to its size"
        covered |= set(range(value, value + size))
    assert covered == set(range(low, high + 1))


def test_a_1024_aligned_range_is_one_filter_and_the_default_range_a_few():
    assert port_blocks(20480, 21503) == [(20480, 0xFC00)]
    assert len(port_blocks(20000, 40000)) < 12


def test_commands_shape_only_udp_from_the_node_ports_and_leave_the_rest_unclassified():
    argv = commands("sln1", [Link(2, 9000, (21000, 21999), 40)])
    assert argv[0] == ["tc", "qdisc", "replace", "dev", "sln1", "root", "handle", "1:", "htb"]  # no default class
    assert argv[1][-4:] == ["rate", "9000kbit", "ceil", "9000kbit"]
    assert argv[2][-5:] == ["handle", "20:", "bfifo", "limit", str(9000 * 40 // 8)], "40 ms at 9 Mbit/s"
    filters = [a for a in argv if a[1] == "filter"]
    assert filters and all(a[a.index("protocol", 8) + 1] == "17" and a[-1] == "1:2" for a in filters)


def test_leaf_handles_are_hex_per_slot():
    assert [leaf_handle(s) for s in (1, 4, 10)] == ["10:", "40:", "a0:"]
    with pytest.raises(ValueError):
        leaf_handle(0)


QDISCS = [
    {"kind": "htb", "handle": "1:", "dev": "sln8000", "root": True, "bytes": 9, "packets": 1, "drops": 7},
    {"kind": "bfifo", "handle": "20:", "dev": "sln8000", "parent": "1:2", "options": {"limit": 60000},
     "bytes": 120000, "packets": 100, "drops": 7, "backlog": 6000, "qlen": 5},
]
CLASSES = "class htb 1:1 root leaf 10: prio 0 rate 1Mbit ceil 1Mbit burst 1600b cburst 1600b \n" \
          "class htb 1:2 root leaf 20: prio 0 rate 9500Kbit ceil 9500Kbit burst 1599b cburst 1599b \n"


def test_the_exporter_finds_its_leaf_and_its_class_rate():
    sample = find(QDISCS, "20:", CLASSES)
    assert (sample.sent_bytes, sample.sent_packets, sample.dropped_packets) == (120000, 100, 7)
    assert (sample.backlog_bytes, sample.backlog_packets, sample.limit_bytes) == (6000, 5, 60000)
    assert sample.rate_bits_per_second == 9.5e6
    with pytest.raises(LinkUnreadable, match="not shaped"):
        find(QDISCS, "30:")


def test_tc_rates_are_si_units():
    assert parse_rate("12Mbit") == 12e6 and parse_rate("800Kbit") == 8e5 and parse_rate("96bit") == 96
    with pytest.raises(ValueError):
        parse_rate("fast")
