"""The client protocol on ``/ws/signaling``: JSON objects with a ``type`` (see docs/protocol.md).

``parse`` turns one text frame into a checked ``dict`` or raises ``ProtocolError`` whose ``reason``
is one of ``PROTOCOL_ERROR_REASONS``. Field rules live in ``CLIENT_MESSAGES``: one entry per
message type, each field with its type and whether it is required.
"""

from __future__ import annotations

import json
import re
from typing import Any

from signaling.limits import REFUSALS

ROOM_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,128}")

# field -> (accepted python types, required)
CLIENT_MESSAGES: dict[str, dict[str, tuple[tuple[type, ...], bool]]] = {
    "join": {"room": ((str,), True), "token": ((str,), False), "role": ((str,), False),
             "display": ((str,), False)},
    "publish": {"sdp": ((str,), True)},
    "subscribe": {"feed": ((int,), True)},
    "answer": {"feed": ((int,), True), "sdp": ((str,), True)},
    "candidate": {"candidate": ((dict, type(None)), True), "feed": ((int,), False)},
    "ice_state": {"state": ((str,), True), "feed": ((int,), False)},
    "leave": {},
    "ping": {},
}
SERVER_MESSAGES = ("joined", "answer", "offer", "subscribed", "publisher_added", "publisher_removed",
                   "left", "pong", "error")
KNOWN_TYPES = frozenset(CLIENT_MESSAGES) | frozenset(SERVER_MESSAGES)
ROLES = ("publisher", "subscriber")
ICE_STATES = ("connected", "failed")

# Reasons for signaling_protocol_errors_total and codes of error frames.
PROTOCOL_ERROR_REASONS = (
    "invalid_json", "not_object", "unknown_type", "missing_field", "invalid_field", "message_too_big",
    "binary_frame", "rate_limited", "slow_consumer", "not_joined", "already_joined", "not_publisher",
    "no_such_feed", "room_full", "sfu_unavailable", "sfu_timeout", "sfu_error", "internal",
) + REFUSALS  # connections refused at the handshake (HTTP 503 / 429) or closed unjoined (4408)


class ProtocolError(Exception):
    """A client message is refused; ``reason`` is the error code sent back and the metric label."""

    def __init__(self, reason: str, message: str, msg_type: str = "unknown") -> None:
        assert reason in PROTOCOL_ERROR_REASONS, reason
        super().__init__(message)
        self.reason = reason
        self.msg_type = msg_type  # the message's type when known, for signaling_messages_total


def metric_type(msg_type: object) -> str:
    """The ``msg_type`` label for a message type: itself when known, else ``unknown``."""
    return msg_type if isinstance(msg_type, str) and msg_type in KNOWN_TYPES else "unknown"


def parse(frame: str | bytes) -> dict[str, Any]:
    """Decode and check one client frame."""
    if isinstance(frame, bytes):
        raise ProtocolError("binary_frame", "send JSON as text frames")
    try:
        message = json.loads(frame)
    except (ValueError, RecursionError):  # ValueError also covers over-long integer literals
        raise ProtocolError("invalid_json", "frame is not valid JSON") from None
    if not isinstance(message, dict):
        raise ProtocolError("not_object", "a message must be a JSON object")
    msg_type = message.get("type")
    if not isinstance(msg_type, str) or msg_type not in CLIENT_MESSAGES:
        raise ProtocolError("unknown_type", f"unknown message type {str(msg_type)[:40]!r}")
    try:
        _check_fields(msg_type, message)
    except ProtocolError as exc:
        exc.msg_type = msg_type
        raise
    return message


def _check_fields(msg_type: str, message: dict[str, Any]) -> None:
    if "id" in message and (isinstance(message["id"], bool) or not isinstance(message["id"], (str, int))):
        raise ProtocolError("invalid_field", "'id' must be a string or an integer")
    for field, (types, required) in CLIENT_MESSAGES[msg_type].items():
        if field not in message:
            if required:
                raise ProtocolError("missing_field", f"{msg_type}: field '{field}' is required")
            continue
        value = message[field]
        if isinstance(value, bool) or not isinstance(value, types):
            names = " or ".join("null" if t is type(None) else {"str": "string", "int": "integer",
                                                                 "dict": "object"}[t.__name__] for t in types)
            raise ProtocolError("invalid_field", f"{msg_type}: field '{field}' must be {names}")
    if msg_type == "join":
        if not ROOM_NAME.fullmatch(message["room"]):
            raise ProtocolError("invalid_field", "join: 'room' must be 1-128 of A-Z a-z 0-9 _ . : -")
        if message.setdefault("role", "publisher") not in ROLES:
            raise ProtocolError("invalid_field", f"join: 'role' must be one of {', '.join(ROLES)}")
        if len(message.get("display", "")) > 64:
            raise ProtocolError("invalid_field", "join: 'display' is longer than 64 characters")
    if msg_type == "ice_state" and message["state"] not in ICE_STATES:
        raise ProtocolError("invalid_field", f"ice_state: 'state' must be one of {', '.join(ICE_STATES)}")


def error_frame(code: str, message: str, ref: object = None) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if ref is not None:
        frame["id"] = ref
    return frame
