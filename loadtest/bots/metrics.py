"""Client-side metrics of the bots: what the peers saw, beside what the servers report.

Janus 1.1.2 counts neither PLI nor FIR; the bots count the PLIs (and NACKed packets) their aiortc
receivers send, by wrapping ``RTCRtpReceiver._send_rtcp_pli`` / ``_send_rtcp_nack`` once per
process, and the retransmissions (RTX packets) they receive by wrapping ``_handle_rtp_packet``;
those are labelled with the SFU node a scenario says the subscription is on (a receiver's ``lab_node``,
one of the stack's node names). aiortc never sends FIR, so there is no FIR counter. Labels come from fixed sets only.

    bot_frames_received_total{media="video"} 2210.0
    bot_freezes_total 3.0
    bot_nacks_sent_total 148.0
    bot_plis_sent_total 2.0
    bot_retransmissions_received_total{node="sfu-node-04"} 131.0
    bot_packets_dropped_total{direction="received"} 150.0
    bot_join_duration_seconds_bucket{le="0.05"} 12.0
    bot_ice_connect_seconds_bucket{le="0.1",role="subscriber"} 12.0
    bot_peers_active{role="publisher"} 2.0
"""

from __future__ import annotations

from typing import Any

from aiortc.codecs import is_rtx
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

ROLES = ("publisher", "subscriber", "lurker")
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
FREEZE_SECONDS = 0.5  # a video gap longer than this is a freeze (WebRTC stats use a similar rule)


class BotMetrics:
    """All bot metrics of one process, in ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        disable_created_metrics()  # no panel or rule reads _created (process-wide)
        self.frames = Counter("bot_frames_received", "Media frames received (video: encoded frames)",
                              ["media"], registry=registry)
        self.freezes = Counter("bot_freezes", f"Video gaps longer than {FREEZE_SECONDS} s", registry=registry)
        self.nacks = Counter("bot_nacks_sent", "RTP packets the bots' receivers NACKed", registry=registry)
        self.plis = Counter("bot_plis_sent", "Picture loss indications the bots' receivers sent",
                            registry=registry)
        self.retransmissions = Counter("bot_retransmissions_received",
                                       "RTX packets the bots' receivers got (Janus's retransmissions), by SFU node "
                                       "(unknown: the scenario did not say)", ["node"], registry=registry)
        self.dropped = Counter("bot_packets_dropped", "RTP packets dropped on purpose (loss injection)",
                               ["direction"], registry=registry)
        self.join = Histogram("bot_join_duration_seconds", "join sent -> joined received", registry=registry,
                              buckets=LATENCY_BUCKETS)
        self.ice = Histogram("bot_ice_connect_seconds", "Offer/answer start -> ICE connected", ["role"],
                             registry=registry, buckets=LATENCY_BUCKETS)
        self.failures = Counter("bot_failures", "Bots that could not join, publish or subscribe", ["role"],
                                registry=registry)
        self.peers = Gauge("bot_peers_active", "Bots connected", ["role"], registry=registry)
        for role in ROLES:
            self.peers.labels(role)
            self.failures.labels(role)
        for media in ("audio", "video"):
            self.frames.labels(media)
        for direction in ("received", "sent"):
            self.dropped.labels(direction)
        count_feedback(self)


_counting: BotMetrics | None = None


def count_feedback(metrics: BotMetrics) -> None:
    """Make every aiortc receiver of this process count the NACKs and PLIs it sends into ``metrics``."""
    global _counting
    first = _counting is None
    _counting = metrics
    if not first:
        return
    send_nack, send_pli = RTCRtpReceiver._send_rtcp_nack, RTCRtpReceiver._send_rtcp_pli
    handle_rtp = RTCRtpReceiver._handle_rtp_packet

    async def rtp(self: Any, packet: Any, arrival_time_ms: int) -> None:
        codec = self._RTCRtpReceiver__codecs.get(packet.payload_type)
        if _counting is not None and codec is not None and is_rtx(codec):
            _counting.retransmissions.labels(getattr(self, "lab_node", None) or "unknown").inc()
        await handle_rtp(self, packet, arrival_time_ms)

    async def nack(self: Any, media_ssrc: int, lost: list[int]) -> None:
        if _counting is not None:
            _counting.nacks.inc(len(lost))
        await send_nack(self, media_ssrc, lost)

    async def pli(self: Any, media_ssrc: int) -> None:
        if _counting is not None:
            _counting.plis.inc()
        await send_pli(self, media_ssrc)

    RTCRtpReceiver._send_rtcp_nack = nack  # type: ignore[method-assign]
    RTCRtpReceiver._send_rtcp_pli = pli  # type: ignore[method-assign]
    RTCRtpReceiver._handle_rtp_packet = rtp  # type: ignore[method-assign]
