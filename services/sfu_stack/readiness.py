"""Polling with a deadline: the one way this project waits for something to become true."""

from __future__ import annotations

import asyncio
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable


class NotReady(TimeoutError):
    """The condition did not hold before the deadline."""


def wait_until(check: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.05) -> None:
    """Call ``check`` until it returns true; raise ``NotReady`` naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return
        if time.monotonic() >= deadline:
            raise NotReady(f"{what}: not true after {timeout:.1f} s")
        time.sleep(interval)


async def wait_until_async(
    check: Callable[[], bool | Awaitable[bool]], *, timeout: float, what: str, interval: float = 0.05
) -> None:
    """Async twin of :func:`wait_until`; ``check`` may be a coroutine function."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() >= deadline:
            raise NotReady(f"{what}: not true after {timeout:.1f} s")
        await asyncio.sleep(interval)


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    """True when a TCP connection to ``host:port`` succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def http_status(url: str, timeout: float = 2.0) -> int:
    """The HTTP status of a GET on ``url``; 0 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0
