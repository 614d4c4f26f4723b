"""``bots``: one process of aiortc bots in one room, for a bounded time, with /metrics.

    SIGNALING_TOKEN_KEY=... bots --signaling ws://198.18.125.2:8080/ws/signaling --room town-hall \\
        --publishers 2 --subscribers 20 --lurkers 200 --seconds 120 --loss 0.05

Natively, run it from the root namespace and give ``--ice-address`` the namespace's host end
(``lab status`` shows it); in Compose the container's own address is used. Every peer is closed
when the time is up or on Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import start_http_server

from loadtest.bots.fleet import Fleet, VideoSettings
from loadtest.bots.media import set_video_bitrate, skip_video_decoding
from loadtest.bots.metrics import BotMetrics
from loadtest.bots.peers import PacketLoss, bind_ice_to
from sfu_stack import topology
from signaling.tokens import mint


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bots", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--signaling", default="ws://signaling:8080/ws/signaling", help="signaling WebSocket URL")
    parser.add_argument("--room", default="bots", help="room to join")
    parser.add_argument("--publishers", type=int, default=1, help="publishers (video + tone)")
    parser.add_argument("--subscribers", type=int, default=10, help="media subscribers")
    parser.add_argument("--feeds", type=int, default=1, help="publishers each subscriber receives")
    parser.add_argument("--lurkers", type=int, default=0, help="signaling-only participants")
    parser.add_argument("--seconds", type=float, default=60, help="how long the bots stay")
    parser.add_argument("--width", type=int, default=320, help="video width")
    parser.add_argument("--height", type=int, default=240, help="video height")
    parser.add_argument("--fps", type=int, default=15, help="video frames per second")
    parser.add_argument("--bitrate", type=int, default=0, help="VP8 starting bitrate in bit/s (0: aiortc's 500k)")
    parser.add_argument("--decode", action="store_true", help="decode received video (costs ~5x the CPU)")
    parser.add_argument("--loss", type=float, default=0.0, help="fraction of incoming RTP each subscriber drops")
    parser.add_argument("--loss-after", type=float, default=5.0, help="seconds of warm-up before dropping")
    parser.add_argument("--ice-address", default="", help="gather ICE host candidates on this address only")
    parser.add_argument("--metrics-host", default="0.0.0.0", help="address of /metrics")
    parser.add_argument("--metrics-port", type=int, default=topology.BOTS_METRICS_PORT, help="port of /metrics")
    return parser


async def run(args: argparse.Namespace, key: str) -> int:
    registry = CollectorRegistry()
    metrics = BotMetrics(registry)
    server, _ = start_http_server(args.metrics_port, addr=args.metrics_host, registry=registry)
    fleet = Fleet(args.signaling, lambda room, user: mint(key, room=room, user=user), metrics)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    try:
        await fleet.publishers(args.room, args.publishers, VideoSettings(args.width, args.height, args.fps))
        loss = (lambda: PacketLoss(args.loss, after=args.loss_after)) if args.loss > 0 else None
        await fleet.subscribers(args.room, args.subscribers, feeds=args.feeds, loss=loss)
        await fleet.lurkers(args.room, args.lurkers)
        print(f"bots: {len(fleet.bots)} in room {args.room} for {args.seconds:g} s", flush=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), args.seconds)
        return 0
    finally:
        await fleet.close()
        server.shutdown()


def main(argv: list[str] | None = None) -> int:
    args = argument_parser().parse_args(argv)
    key = os.environ.get("SIGNALING_TOKEN_KEY", "")
    if len(key) < 32:
        print("bots: SIGNALING_TOKEN_KEY (the signaling service's token key, ≥ 32 chars) is required", file=sys.stderr)
        return 2
    if args.ice_address:
        bind_ice_to(args.ice_address)
    skip_video_decoding(not args.decode)
    if args.bitrate:
        set_video_bitrate(args.bitrate)
    return asyncio.run(run(args, key))


if __name__ == "__main__":
    sys.exit(main())
