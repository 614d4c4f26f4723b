"""Run the exporter: ``janus-exporter`` (or ``python -m janus_exporter``), configured by environment.

SIGTERM and SIGINT stop it cleanly. A missing or bad setting exits with status 2 and names it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

from aiohttp import web

from janus_exporter import config as exporter_config
from janus_exporter.exporter import Exporter
from janus_exporter.server import build_app


async def serve(config: exporter_config.Config) -> None:
    runner = web.AppRunner(build_app(Exporter(config)), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, config.listen, config.port)
    await site.start()
    logging.getLogger("janus_exporter").info(
        "listening on %s:%d (admin %s, media from %s)", config.listen, config.port, config.admin_url,
        config.media_source)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Prometheus exporter for one Janus node (Admin API + event handler).",
        epilog="environment:\n" + exporter_config.describe(), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("JANUS_EXPORTER_LOG_LEVEL", "INFO").upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = exporter_config.load(os.environ)
    except exporter_config.ConfigError as exc:
        print(f"janus-exporter: {exc}", file=sys.stderr)
        return 2
    asyncio.run(serve(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
