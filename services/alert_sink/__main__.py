"""``alert-sink`` / ``python -m alert_sink``: serve the alert webhook sink until SIGTERM or SIGINT.

Every flag has an environment twin (``ALERT_SINK_<FLAG>``); flags win.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Mapping

from alert_sink.server import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_NOTIFICATIONS, DEFAULT_MAX_STORED_BYTES, AlertSink

PREFIX = "ALERT_SINK_"


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise ValueError("must be a TCP port 0-65535")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def argument_parser(env: Mapping[str, str] = os.environ) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="alert-sink", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Alert webhook sink of the SFU Observability Lab: records Alertmanager notifications "
                    f"and lists them over HTTP. Every flag has an environment twin ({PREFIX}<FLAG>); flags win.")

    def option(name: str, default: str, help_text: str) -> None:
        key = PREFIX + name.upper().replace("-", "_")
        parser.add_argument(f"--{name}", default=env.get(key) or default, help=f"{help_text} [{key}]")

    option("host", "0.0.0.0", "address to listen on")
    option("port", "9099", "TCP port to listen on (0: any free port)")
    option("max-notifications", str(DEFAULT_MAX_NOTIFICATIONS), "notifications kept in memory, newest first")
    option("max-body-bytes", str(DEFAULT_MAX_BODY_BYTES), "largest webhook body accepted; larger ones get 413")
    option("max-stored-bytes", str(DEFAULT_MAX_STORED_BYTES), "memory budget for kept notification bodies")
    option("log-level", "info", "logging level")
    return parser


def parse(argv: list[str] | None, env: Mapping[str, str] = os.environ) -> dict[str, object]:
    """Parse flags and environment; raise ``ValueError`` listing every bad value."""
    args = argument_parser(env).parse_args(argv)
    settings: dict[str, object] = {"host": args.host, "log_level": str(args.log_level).upper()}
    problems = []
    for name, parser in (("port", _port), ("max_notifications", _positive_int), ("max_body_bytes", _positive_int),
                         ("max_stored_bytes", _positive_int)):
        try:
            settings[name] = parser(getattr(args, name))
        except ValueError as exc:
            problems.append(f"{name} = {getattr(args, name)!r}: {exc}")
    if settings["log_level"] not in logging.getLevelNamesMapping():
        problems.append(f"log_level = {args.log_level!r}: not a logging level")
    if problems:
        raise ValueError("; ".join(problems))
    return settings


async def serve(settings: dict[str, object]) -> int:
    sink = AlertSink(max_notifications=settings["max_notifications"], max_body_bytes=settings["max_body_bytes"],
                     max_stored_bytes=max(settings["max_stored_bytes"], settings["max_body_bytes"]))
    await sink.start(settings["host"], settings["port"])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    logging.getLogger("alert_sink").info("shutting down")
    await sink.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        settings = parse(argv)
    except ValueError as exc:
        print(f"alert-sink: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings["log_level"], format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return asyncio.run(serve(settings))


if __name__ == "__main__":
    sys.exit(main())
