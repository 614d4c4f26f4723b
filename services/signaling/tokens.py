"""Participant tokens: HS256 JWTs bound to one room, with an expiry.

``verify`` names why a token is refused with one of ``FAILURE_REASONS`` (the values of the
``reason`` label of ``signaling_auth_failures_total``; ``throttled`` is the connection's refusal
of any join from a source with too many refused ones, see ``limits.JoinThrottle``). ``main`` is the ``signaling-token``
command that mints tokens for the load harness and the labs; the key comes from
``SIGNALING_TOKEN_KEY`` and has no default.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from dataclasses import dataclass

import jwt

ALGORITHM = "HS256"
FAILURE_REASONS = ("missing", "malformed", "expired", "bad_signature", "wrong_room", "throttled")


class TokenRejected(Exception):
    """The token does not admit its bearer; ``reason`` is one of ``FAILURE_REASONS``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Grant:
    """What a valid token allows: ``user`` may join ``room``."""

    user: str
    room: str


def mint(key: str, *, room: str, user: str | None = None, ttl_seconds: float = 3600,
         now: float | None = None) -> str:
    issued = time.time() if now is None else now
    claims = {
        "sub": user or f"user-{uuid.uuid4().hex[:12]}",
        "room": room,
        "iat": int(issued),
        "exp": int(issued + ttl_seconds),
    }
    return jwt.encode(claims, key, algorithm=ALGORITHM)


def verify(key: str, token: object, *, room: str) -> Grant:
    """Return the grant of ``token`` for ``room`` or raise ``TokenRejected``."""
    if token is None or token == "":
        raise TokenRejected("missing", "a token is required to join")
    if not isinstance(token, str):
        raise TokenRejected("malformed", "token must be a string")
    try:
        claims = jwt.decode(token, key, algorithms=[ALGORITHM], options={"require": ["exp", "sub", "room"]})
    except jwt.ExpiredSignatureError:
        raise TokenRejected("expired", "token has expired") from None
    except jwt.InvalidSignatureError:
        raise TokenRejected("bad_signature", "token signature does not verify") from None
    except jwt.InvalidTokenError as exc:
        raise TokenRejected("malformed", f"token is malformed: {exc}") from None
    if not isinstance(claims["room"], str) or not isinstance(claims["sub"], str):
        raise TokenRejected("malformed", "token claims 'room' and 'sub' must be strings")
    if claims["room"] != room:
        raise TokenRejected("wrong_room", "token is for another room")
    return Grant(user=claims["sub"], room=room)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="signaling-token",
        description="Mint a participant token for one room (key from SIGNALING_TOKEN_KEY).",
    )
    parser.add_argument("--room", required=True, help="room the token admits to")
    parser.add_argument("--user", default=None, help="participant id (default: random)")
    parser.add_argument("--ttl", type=float, default=3600, help="seconds until expiry (default: %(default)s)")
    parser.add_argument("--count", type=int, default=1, help="tokens to print, one per line (default: 1)")
    args = parser.parse_args(argv)
    key = os.environ.get("SIGNALING_TOKEN_KEY", "")
    if len(key) < 32:
        print("signaling-token: SIGNALING_TOKEN_KEY must be set (at least 32 characters)", file=sys.stderr)
        return 2
    for index in range(args.count):
        user = args.user if args.count == 1 or args.user is None else f"{args.user}-{index}"
        print(mint(key, room=args.room, user=user, ttl_seconds=args.ttl))
    return 0


if __name__ == "__main__":
    sys.exit(main())
