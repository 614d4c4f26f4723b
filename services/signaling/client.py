"""A small client of the signaling protocol, for tests, the load harness and the labs."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection


class SignalingClient:
    """One WebSocket to ``/ws/signaling``; ``request`` sends and waits for the reply of that type."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []  # frames received while waiting for something else

    @classmethod
    async def connect(cls, url: str, **kwargs: Any) -> SignalingClient:
        return cls(await websockets.connect(url, compression=None, **kwargs))

    async def send(self, frame: dict[str, Any] | str) -> None:
        await self.ws.send(frame if isinstance(frame, str) else json.dumps(frame))

    async def receive(self, *types: str, timeout: float = 10.0) -> dict[str, Any]:
        """Next frame whose type is in ``types`` (any type when empty); ``error`` frames always return."""
        for index, frame in enumerate(self.events):
            if not types or frame["type"] in types or frame["type"] == "error":
                return self.events.pop(index)
        async with asyncio.timeout(timeout):
            while True:
                frame = json.loads(await self.ws.recv())
                if not types or frame["type"] in types or frame["type"] == "error":
                    return frame
                self.events.append(frame)

    async def request(self, frame: dict[str, Any], *reply_types: str, timeout: float = 10.0) -> dict[str, Any]:
        await self.send(frame)
        return await self.receive(*reply_types, timeout=timeout)

    async def join(self, room: str, token: str, role: str = "publisher", **extra: Any) -> dict[str, Any]:
        return await self.request({"type": "join", "room": room, "token": token, "role": role, **extra}, "joined")

    async def first_feed(self, joined: dict[str, Any], timeout: float = 10.0) -> int:
        """A publisher's feed id: from the ``joined`` reply, or the next ``publisher_added`` (Janus lists a
        publisher only once its media is set up, which can be just after the publisher saw ICE connect)."""
        if joined.get("publishers"):
            return int(joined["publishers"][0]["feed"])
        added = await self.receive("publisher_added", timeout=timeout)
        return int(added["publishers"][0]["feed"])

    async def close(self) -> None:
        await self.ws.close()
