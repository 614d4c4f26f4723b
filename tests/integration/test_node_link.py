"""A node's shaped link on a real veth pair (real tc, real exporter): RTP over capacity is dropped by the
link's queue and counted by the exporter; traffic from other ports passes unshaped."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from janus_node.link import Link, apply
from lab.components import Component, python_module
from lab.netns import NetNamespace
from sfu_stack.readiness import port_open

from support import scrape_samples, value

pytestmark = pytest.mark.janus
POD_SH = Path(__file__).resolve().parents[2] / "services" / "janus" / "pod.sh"
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


def test_the_pod_entrypoint_shapes_its_namespace_then_sleeps_without_root_or_capabilities(tmp_path):
    """services/janus/pod.sh as compose.yaml's pods run it (SFU_NODE_LINK_KBIT set), here in a namespace."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "python3"  # the image's python3, with janus_node importable
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    wrapper.chmod(0o755)
    with NetNamespace.create() as ns:
        pod = Component("pod", ["sh", str(POD_SH)], tmp_path, netns=ns, env={
            "PATH": f"{bin_dir}:/usr/sbin:/usr/bin:/sbin:/bin", "SFU_NODE_LINK_KBIT": "3000",
            "SFU_NODE_LINK_DEV": ns.ns_if, "JANUS_RTP_PORT_RANGE": "20000-20999"})
        pod.start()
        try:
            def sleeping_unprivileged() -> bool:
                status = Path(f"/proc/{pod.pid}/status").read_text()
                return "sleep" in Path(f"/proc/{pod.pid}/comm").read_text() and "\nUid:\t10001\t" in status
            pod.wait_ready(sleeping_unprivileged)
            status = Path(f"/proc/{pod.pid}/status").read_text()
            qdiscs = subprocess.run([*ns.exec_prefix(), "tc", "qdisc", "show", "dev", ns.ns_if], capture_output=True,
                                    text=True, check=True).stdout
        finally:
            pod.stop()
    assert "CapEff:\t0000000000000000" in status and "CapBnd:\t0000000000000000" in status, status
    assert "qdisc htb 1: root" in qdiscs and "qdisc bfifo 10: parent 1:1 limit 75000b" in qdiscs, qdiscs
    assert "janus_node.link: " in pod.log_path.read_text()
