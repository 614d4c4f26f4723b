"""A node's shaped link on a real veth pair (real tc, real exporter): RTP over capacity is dropped by the
link's queue and counted by the exporter; traffic from other ports passes unshaped."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from janus_node.link import Link, apply
from lab.components import Component, python_module
from lab.netns import NetNamespace
from sfu_stack.readiness import port_open

from support import scrape_samples, value

pytestmark = pytest.mark.janus
SEND = """
import socket, sys
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind((sys.argv[1], int(sys.argv[2])))
for _ in range(int(sys.argv[4])):
    sock.sendto(b"x" * 1000, (sys.argv[3], 9999))
"""


def blast(ns: NetNamespace, source_port: int, count: int) -> None:
    subprocess.run([*ns.exec_prefix(), sys.executable, "-c", SEND, ns.ns_ip, str(source_port), ns.host_ip,
                    str(count)], check=True, timeout=30)


async def test_rtp_over_the_link_is_dropped_by_its_queue_and_exported_other_traffic_is_not(tmp_path):
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with NetNamespace.create() as ns, receiver:
        receiver.setsockopt(socket.SOL_SOCKET, 33, 16 * 2**20)  # SO_RCVBUFFORCE (root)
        receiver.bind((ns.host_ip, 9999))
        apply(ns.ns_if, [Link(1, 2000, (20000, 20999), 40), Link(2, 2000, (21000, 21999), 40)],
              prefix=ns.exec_prefix())
        exporter = Component("link-exporter", python_module("janus_exporter"), tmp_path, netns=ns, env={
            "JANUS_ADMIN_SECRET": "not-a-janus-here", "JANUS_EXPORTER_ADMIN_URL": "http://127.0.0.1:9/admin",
            "JANUS_EXPORTER_LISTEN": ns.ns_ip, "JANUS_EXPORTER_PORT": "9188", "JANUS_EXPORTER_LINK_QDISC": "10:",
            "JANUS_EXPORTER_CPU_BUDGET_CORES": "1"})
        exporter.start()
        try:
            exporter.wait_ready(lambda: port_open(ns.ns_ip, 9188))
            blast(ns, 20007, 2000)  # node 1's RTP port: 2 MB at once into a 2 Mbit/s link, 40 ms (10 kB) of queue
            blast(ns, 30000, 2000)  # not an RTP port of any node: unshaped
            samples = await scrape_samples(f"http://{ns.ns_ip}:9188/metrics")
        finally:
            exporter.stop()
        receiver.setblocking(False)
        sources: dict[int, int] = {}
        while True:
            try:
                _, (_, port) = receiver.recvfrom(2048)
            except BlockingIOError:
                break
            sources[port] = sources.get(port, 0) + 1
    assert value(samples, "sfu_link_up") == 1
    assert value(samples, "sfu_link_capacity_bytes_per_second") == 2000 * 1000 / 8
    assert value(samples, "sfu_link_queue_limit_bytes") == 2000 * 40 // 8
    dropped, sent = value(samples, "sfu_link_dropped_packets_total"), value(samples, "sfu_link_sent_packets_total")
    assert dropped > 1500 and sent + dropped + value(samples, "sfu_link_backlog_packets") == 2000, samples
    assert sources.get(30000) == 2000, "traffic from a non-RTP port is not shaped"
    assert sources.get(20007, 0) <= 2000 - dropped


async def test_an_unshaped_node_reports_link_down_and_nothing_else(tmp_path):
    with NetNamespace.create() as ns:
        exporter = Component("link-exporter", python_module("janus_exporter"), tmp_path, netns=ns, env={
            "JANUS_ADMIN_SECRET": "not-a-janus-here", "JANUS_EXPORTER_ADMIN_URL": "http://127.0.0.1:9/admin",
            "JANUS_EXPORTER_LISTEN": ns.ns_ip, "JANUS_EXPORTER_PORT": "9188"})
        exporter.start()
        try:
            exporter.wait_ready(lambda: port_open(ns.ns_ip, 9188))
            samples = await scrape_samples(f"http://{ns.ns_ip}:9188/metrics")
        finally:
            exporter.stop()
    assert value(samples, "sfu_link_up") == 0
    assert not [name for name, _ in samples if name.startswith("sfu_link_") and name != "sfu_link_up"]
