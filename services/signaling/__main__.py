"""``signaling`` / ``python -m signaling``: load the configuration, serve until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

from signaling.config import ConfigError, argument_parser, load
from signaling.server import SignalingServer


async def serve(config_overrides: dict[str, str | None]) -> int:
    try:
        config = load(os.environ, config_overrides)
    except ConfigError as exc:
        print(f"signaling: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if logging.getLogger().level > logging.DEBUG:
        # websockets logs each connection and each refused upgrade at INFO: a flood would write a line each
        logging.getLogger("websockets").setLevel(logging.WARNING)
    server = SignalingServer(config)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    logging.getLogger("signaling").info("shutting down")
    await server.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = argument_parser().parse_args(argv)
    return asyncio.run(serve(vars(args)))


if __name__ == "__main__":
    sys.exit(main())
