"""Capture golden inputs for the exporter from a real run (run by hand, as root; output is committed).

Starts one Janus node in a lab namespace posting its events here, the signaling service, one aiortc
publisher and two subscribers (one losing 10% of its video after a warm-up); after ``--seconds``
it records every Admin API reply of one full sweep (``handle_info`` included), the event posts
received, and the node's ``/proc/PID/stat``.

    .venv/bin/python tests/golden/capture.py --out tests/golden/run1 --seconds 12
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import tempfile
from pathlib import Path
from typing import Any

from aiohttp import web

sys.path.insert(0, str(Path(__file__).parents[1]))

from janus_exporter.admin import AdminClient  # noqa: E402
from janus_exporter.inventory import sweep  # noqa: E402
from lab.components import JanusNode, events_env  # noqa: E402
from lab.netns import NetNamespace  # noqa: E402
from lab.stack import free_port  # noqa: E402
from loadtest.bots.peers import PacketLoss, SyntheticVideo, bind_ice_to, new_peer_connection, publish, subscribe  # noqa: E402
from signaling.client import SignalingClient  # noqa: E402
from signaling.server import SignalingServer  # noqa: E402

from conftest import signaling_config  # noqa: E402
from support import token, ws_url  # noqa: E402


class RecordingClient(AdminClient):
    """An Admin client that keeps every request and reply."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.exchanges: list[dict[str, Any]] = []

    async def request(self, janus: str, *, session_id: int | None = None, handle_id: int | None = None,
                      **fields: Any) -> dict[str, Any]:
        reply = await super().request(janus, session_id=session_id, handle_id=handle_id, **fields)
        self.exchanges.append({"request": janus, "session_id": session_id, "handle_id": handle_id,
                               "fields": fields, "reply": reply})
        return reply


async def capture(seconds: float) -> tuple[list[dict[str, Any]], list[Any], str]:
    posts: list[Any] = []

    async def receive(request: web.Request) -> web.Response:
        posts.append(json.loads(await request.read()))
        return web.Response(status=204)

    netns = NetNamespace.create()
    port = free_port()
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/events", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, netns.host_ip, port).start()
    workdir = Path(tempfile.mkdtemp(prefix="capture-"))
    node = JanusNode("sfu-node-01", 0, netns, workdir, admin_secret=secrets.token_hex(12),
                     extra_env=events_env(f"http://{netns.host_ip}:{port}/events", stats_period=1))
    server: SignalingServer | None = None
    pcs = []
    clients = []
    try:
        node.start_and_wait()
        server = SignalingServer(signaling_config([node]))
        await server.start()
        bind_ice_to(netns.host_ip)
        publisher = await SignalingClient.connect(ws_url(server))
        clients.append(publisher)
        pcs.append(pub_pc := new_peer_connection())
        await publisher.join("golden", token("golden"), display="pub")
        await publish(publisher, pub_pc, video=SyntheticVideo())
        for loss in (None, PacketLoss(0.10, after=3.0, seed=1)):
            client = await SignalingClient.connect(ws_url(server))
            clients.append(client)
            pcs.append(pc := new_peer_connection())
            joined = await client.join("golden", token("golden"), role="subscriber")
            await subscribe(client, pc, await client.first_feed(joined), loss=loss)
        await asyncio.sleep(seconds)  # a capture, not a test: let counters grow for a while
        recorder = RecordingClient(node.admin_url, node.admin_secret)
        await sweep(recorder, handle_info=True)
        await recorder.close()
        posts_at_sweep = list(posts)
        stat = await asyncio.to_thread(Path(f"/proc/{node.pid}/stat").read_text)
    finally:
        for pc in pcs:
            await pc.close()
        for client in clients:
            await client.close()
        if server is not None:
            await server.close()
        node.stop()
        await runner.cleanup()
        netns.destroy()
    return recorder.exchanges, posts_at_sweep, stat


def save(out: Path, exchanges: list[dict[str, Any]], posts: list[Any], stat: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for exchange in exchanges:
        exchange["reply"]["transaction"] = "x"
    (out / "admin.json").write_text(json.dumps(exchanges, indent=1) + "\n")
    (out / "events.json").write_text(json.dumps(posts, indent=1) + "\n")
    (out / "janus.stat").write_text(stat)
    print(f"{len(exchanges)} Admin replies, {len(posts)} event posts "
          f"({sum(len(p) if isinstance(p, list) else 1 for p in posts)} events) in {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder for admin.json, events.json, janus.stat")
    parser.add_argument("--seconds", type=float, default=12.0, help="media time before the sweep")
    args = parser.parse_args()
    save(args.out, *asyncio.run(capture(args.seconds)))


if __name__ == "__main__":
    main()
