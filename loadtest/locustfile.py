"""Locust load on the signaling service: WebSocket participants that join, ping, leave and rejoin.

Headless, with the stage table setting users and duration (see docs/loadtest-locust.md)::

    SIGNALING_TOKEN_KEY=... locust -f loadtest/locustfile.py --headless \\
        --host ws://198.18.125.2:8080 --csv out/locust --html out/locust.html

Without ``--headless`` the same run is driven from the web UI (http://127.0.0.1:8089).

Every participant is signaling-only (role ``subscriber``, no media). ``SignalingUser`` churns on
one WebSocket: join a room drawn from ``load-0`` ... ``load-{N-1}`` with a token minted here, a
few pings, leave, join another room; a share of its sessions start on a fresh connection.
``BadTokenUser`` (a configurable share of the users) presents refused tokens in turn (expired,
bad signature, malformed, wrong room), which drives ``signaling_auth_failures_total``; an
``unauthorized`` refusal with the expected reason is its success. Any other error frame is a
failure named by its code.

Options are Locust command-line options, each also read from the environment variable in
``OPTIONS`` (and shown in the web UI). The token key comes only from ``SIGNALING_TOKEN_KEY``.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import random
import secrets
import sys
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import websocket  # websocket-client: blocking sockets, cooperative under Locust's gevent patching
from locust import LoadTestShape, User, events, task

from signaling.tokens import mint

log = logging.getLogger("locustfile")

REQUEST_TYPE = "WS"
BAD_TOKEN_REASONS = ("expired", "bad_signature", "malformed", "wrong_room", "missing")
DEFAULT_STAGES = "60:50:1,120:50:1,30:200:20,60:50:10,30:0:5"  # ramp up, hold, spike, back, ramp down

# option (dest) -> (environment variable, default, help)
OPTIONS: dict[str, tuple[str, str, str]] = {
    "stages": ("LOCUST_STAGES", DEFAULT_STAGES,
               "stage table DURATION:USERS:SPAWN_RATE,... (seconds each, users to reach, users/s); "
               "the run stops after the last stage"),
    "rooms": ("LOCUST_ROOMS", "50", "rooms to draw from, named PREFIX0 ... PREFIX{N-1}"),
    "room_prefix": ("LOCUST_ROOM_PREFIX", "load-", "prefix of the room names"),
    "bad_token_share": ("LOCUST_BAD_TOKEN_SHARE", "0.1", "share of the users (0-1) that present refused tokens"),
    "bad_token_reasons": ("LOCUST_BAD_TOKEN_REASONS", "expired,bad_signature,malformed,wrong_room",
                          f"refusals the bad-token users cycle through, from {','.join(BAD_TOKEN_REASONS)}"),
    "pings_min": ("LOCUST_PINGS_MIN", "1", "fewest pings per joined session"),
    "pings_max": ("LOCUST_PINGS_MAX", "5", "most pings per joined session"),
    "wait_min": ("LOCUST_WAIT_MIN", "0.5", "shortest pause between two messages of a user (s)"),
    "wait_max": ("LOCUST_WAIT_MAX", "2", "longest pause between two messages of a user (s)"),
    "reconnect_share": ("LOCUST_RECONNECT_SHARE", "0.2", "share of sessions (0-1) that start on a new WebSocket"),
    "reply_timeout": ("LOCUST_REPLY_TIMEOUT", "10", "seconds to wait for a reply (and to connect)"),
    "token_ttl": ("LOCUST_TOKEN_TTL", "600", "lifetime of the minted tokens (s)"),
    "ws_path": ("LOCUST_WS_PATH", "/ws/signaling", "WebSocket path, used when --host has none"),
}


class SettingsError(ValueError):
    """A setting of the load run is missing or invalid; the message says which and why."""


@dataclass(frozen=True)
class Stage:
    duration: float  # seconds this stage lasts
    users: int  # users to reach (and hold) during it
    spawn_rate: float  # users started or stopped per second on the way there


def parse_stages(text: str) -> list[Stage]:
    """``"10:5:2,30:20:5"`` -> stages; raise ``SettingsError`` naming the bad entry."""
    stages = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        fields = entry.split(":")
        try:
            if len(fields) != 3:
                raise ValueError
            stage = Stage(float(fields[0]), int(fields[1]), float(fields[2]))
        except ValueError:
            raise SettingsError(f"stage {entry!r} is not DURATION:USERS:SPAWN_RATE") from None
        if stage.duration <= 0 or stage.users < 0 or stage.spawn_rate <= 0:
            raise SettingsError(f"stage {entry!r}: duration and spawn rate must be > 0, users >= 0")
        stages.append(stage)
    if not stages:
        raise SettingsError("the stage table is empty")
    return stages


def slow_ramps(stages: list[Stage]) -> list[str]:
    """Stages whose ramp outlasts them: Locust finishes a ramp before it looks at the next stage,
    so such a stage pushes every later one back."""
    problems, users = [], 0
    for index, stage in enumerate(stages):
        ramp = abs(stage.users - users) / stage.spawn_rate
        if ramp > stage.duration:
            problems.append(f"stage {index + 1} ramps {users}->{stage.users} users in {ramp:g} s, "
                            f"longer than its {stage.duration:g} s")
        users = stage.users
    return problems


def stage_at(stages: list[Stage], elapsed: float) -> Stage | None:
    """The stage running ``elapsed`` seconds into the run; None once the table is over."""
    end = 0.0
    for stage in stages:
        end += stage.duration
        if elapsed < end:
            return stage
    return None


def signaling_url(host: str | None, path: str = "/ws/signaling") -> str:
    """The WebSocket URL for Locust's ``--host``: ``ws://HOST:PORT`` gets ``path``; http(s) maps to ws(s)."""
    if not host:
        raise SettingsError("no host: pass --host ws://HOST:PORT (the signaling service)")
    parts = urlsplit(host)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss") or not parts.netloc:
        raise SettingsError(f"host {host!r} is not ws://HOST:PORT (or wss://, http://, https://)")
    return urlunsplit((scheme, parts.netloc, parts.path if parts.path not in ("", "/") else path, parts.query, ""))


def bad_token(reason: str, key: str, room: str, user: str, ttl: float) -> str | None:
    """A token the service refuses for ``room`` with ``reason`` (None: send no token at all)."""
    if reason == "expired":
        return mint(key, room=room, user=user, ttl_seconds=60, now=time.time() - 3600)
    if reason == "bad_signature":
        return mint(secrets.token_urlsafe(32), room=room, user=user, ttl_seconds=ttl)
    if reason == "malformed":
        return "not-a-jwt." + secrets.token_urlsafe(12)
    if reason == "wrong_room":
        return mint(key, room=f"{room}.elsewhere", user=user, ttl_seconds=ttl)
    if reason == "missing":
        return None
    raise SettingsError(f"unknown bad-token reason {reason!r}")


@dataclass(frozen=True)
class Settings:
    token_key: str
    stages: list[Stage]
    rooms: list[str]
    bad_token_share: float
    bad_token_reasons: tuple[str, ...]
    pings: tuple[int, int]
    wait: tuple[float, float]
    reconnect_share: float
    reply_timeout: float
    token_ttl: float
    ws_path: str

    @classmethod
    def load(cls, values: dict[str, str], environ: dict[str, str] | os._Environ[str] = os.environ) -> Settings:
        key = environ.get("SIGNALING_TOKEN_KEY", "")
        if not key:
            raise SettingsError("SIGNALING_TOKEN_KEY is not set: export the signaling service's token key "
                                "(the same value the service runs with; there is no default)")
        if len(key) < 32:
            raise SettingsError("SIGNALING_TOKEN_KEY is shorter than 32 characters; the service refuses such keys")

        def number(name: str, kind: type, low: float, high: float = float("inf")) -> Any:
            try:
                value = kind(values[name])
            except ValueError:
                raise SettingsError(f"{OPTIONS[name][0]}={values[name]!r} is not a {kind.__name__}") from None
            if not low <= value <= high:
                raise SettingsError(f"{OPTIONS[name][0]}={values[name]!r} is outside [{low:g}, {high:g}]")
            return value

        reasons = tuple(r.strip() for r in values["bad_token_reasons"].split(",") if r.strip())
        unknown = set(reasons) - set(BAD_TOKEN_REASONS)
        if unknown or not reasons:
            raise SettingsError(f"LOCUST_BAD_TOKEN_REASONS={values['bad_token_reasons']!r}: "
                                f"use some of {','.join(BAD_TOKEN_REASONS)}")
        pings = (number("pings_min", int, 0), number("pings_max", int, 0))
        wait = (number("wait_min", float, 0), number("wait_max", float, 0))
        if pings[0] > pings[1] or wait[0] > wait[1]:
            raise SettingsError("the minimum of pings or wait is above its maximum")
        return cls(
            token_key=key,
            stages=parse_stages(values["stages"]),
            rooms=[f"{values['room_prefix']}{i}" for i in range(number("rooms", int, 1))],
            bad_token_share=number("bad_token_share", float, 0, 1),
            bad_token_reasons=reasons,
            pings=pings,
            wait=wait,
            reconnect_share=number("reconnect_share", float, 0, 1),
            reply_timeout=number("reply_timeout", float, 0.1),
            token_ttl=number("token_ttl", float, 1),
            ws_path=values["ws_path"],
        )


def option_values(environment: Any) -> dict[str, str]:
    """Each option from Locust's parsed options, else its environment variable, else its default."""
    parsed = getattr(environment, "parsed_options", None)
    values = {}
    for name, (env_var, default, _) in OPTIONS.items():
        value = getattr(parsed, name, None) if parsed is not None else None
        values[name] = str(value) if value is not None else os.environ.get(env_var, default)
    return values


def settings_for(environment: Any) -> Settings:
    settings = getattr(environment, "signaling_settings", None)
    return settings if settings is not None else apply_settings(environment)


def apply_settings(environment: Any) -> Settings:
    """Read the settings afresh (the web UI may have changed the options) and split the users by them."""
    settings = environment.signaling_settings = Settings.load(option_values(environment))
    SignalingUser.weight = 1 - settings.bad_token_share
    BadTokenUser.weight = settings.bad_token_share
    return settings


@events.init_command_line_parser.add_listener
def _add_options(parser: Any) -> None:
    for name, (env_var, default, help_text) in OPTIONS.items():  # shown in the web UI's custom parameters too
        parser.add_argument("--" + name.replace("_", "-"), dest=name, env_var=env_var, default=default,
                            help=f"signaling load: {help_text} (env {env_var}, default {default!r})")


@events.init.add_listener
def _check_settings(environment: Any, **_: Any) -> None:
    """Refuse to start with a missing key or a bad option, rather than fail every request."""
    try:
        settings = apply_settings(environment)
        parsed = getattr(environment, "parsed_options", None)
        if parsed is not None and getattr(parsed, "headless", False):
            signaling_url(environment.host, settings.ws_path)
    except SettingsError as exc:
        sys.exit(f"locustfile: {exc}")
    for problem in slow_ramps(settings.stages):
        log.warning("%s; later stages start late", problem)


@events.test_start.add_listener
def _reload_settings(environment: Any, **_: Any) -> None:
    """Before the users of a run are dispatched: take the options as the web UI left them."""
    try:
        apply_settings(environment)
    except SettingsError as exc:
        log.error("locustfile: %s; the run keeps its previous settings", exc)


class SignalingError(Exception):
    """An error frame from the service, or a reply that is not the one expected."""


_user_ids = itertools.count(1)


class _Participant(User):
    """One signaling connection; requests are reported to Locust's statistics as type ``WS``."""

    abstract = True

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.settings = settings_for(environment)
        self.url = signaling_url(self.host or environment.host, self.settings.ws_path)
        self.user_id = f"locust-{os.getpid()}-{next(_user_ids)}"
        self.ws: websocket.WebSocket | None = None
        self.message_ids = itertools.count(1)
        self.last_room: str | None = None

    def wait_time(self) -> float:
        return random.uniform(*self.settings.wait)

    def on_stop(self) -> None:
        self.close()

    # ---- connection ---------------------------------------------------------------------------------
    def close(self) -> None:
        """Send a close frame and drop the socket, without waiting for the service's close frame.

        Not ``WebSocket.close()``: its wait for the reply swallows every exception with a bare
        ``except``, Locust's GreenletExit included, and a user stopped there would run on forever.
        """
        ws, self.ws = self.ws, None
        if ws is not None:
            try:
                with contextlib.suppress(websocket.WebSocketException, OSError):
                    ws.send_close()
            finally:
                ws.shutdown()

    def connect(self) -> bool:
        self.close()
        started = time.perf_counter()
        try:
            self.ws = websocket.create_connection(self.url, timeout=self.settings.reply_timeout,
                                                  skip_utf8_validation=True)
        except (websocket.WebSocketException, OSError) as exc:
            self.report("connect", started, 0, exc)
            return False
        self.report("connect", started, 0, None)
        return True

    def pick_room(self) -> str:
        choices = [r for r in self.settings.rooms if r != self.last_room] or self.settings.rooms
        self.last_room = random.choice(choices)
        return self.last_room

    # ---- requests -----------------------------------------------------------------------------------
    def report(self, name: str, started: float, size: int, exc: Exception | None) -> None:
        self.environment.events.request.fire(
            request_type=REQUEST_TYPE, name=name, response_time=(time.perf_counter() - started) * 1000,
            response_length=size, exception=exc, context={"user": self.user_id})

    def request(self, name: str, frame: dict[str, Any]) -> tuple[dict[str, Any] | None, float, int]:
        """Send ``frame`` with a new id and return (its reply, start time, reply size); a broken connection
        is reported as a failure of ``name`` and closed, and gives (None, ...)."""
        assert self.ws is not None
        ident = next(self.message_ids)
        started = time.perf_counter()
        deadline = time.monotonic() + self.settings.reply_timeout
        try:
            self.ws.send(json.dumps({**frame, "id": ident}))
            while True:
                raw = self.ws.recv()
                if not raw:
                    raise websocket.WebSocketConnectionClosedException("the service closed the connection")
                reply = json.loads(raw)
                if reply.get("id") == ident:
                    return reply, started, len(raw)
                if reply.get("type") == "error":  # unprompted: sfu_unavailable, rate_limited ...
                    self.report("error (unprompted)", time.perf_counter(), len(raw), error_of(reply))
                if time.monotonic() > deadline:
                    raise websocket.WebSocketTimeoutException(f"no reply to {name} within the reply timeout")
        except (websocket.WebSocketException, OSError, ValueError) as exc:
            self.report(name, started, 0, exc)
            self.close()
            return None, started, 0

    def expect(self, name: str, frame: dict[str, Any], reply_type: str) -> bool:
        """One request whose success is a reply of ``reply_type``; an error frame fails with its code."""
        reply, started, size = self.request(name, frame)
        if reply is None:
            return False
        if reply.get("type") == reply_type:
            self.report(name, started, size, None)
            return True
        self.report(name, started, size, error_of(reply))
        return False


def error_of(reply: dict[str, Any]) -> SignalingError:
    """A failure named by the error code (and refusal reason): bounded, so Locust's failure table stays small."""
    if reply.get("type") != "error":
        return SignalingError(f"unexpected reply {reply.get('type')!r}")
    reason = f" ({reply['reason']})" if reply.get("reason") else ""
    return SignalingError(f"error {reply.get('code')}{reason}")


class SignalingUser(_Participant):
    """A participant that churns: join, pings, leave, rejoin another room."""

    weight = 0.9

    @task
    def session(self) -> None:
        if (self.ws is None or random.random() < self.settings.reconnect_share) and not self.connect():
            return
        room = self.pick_room()
        token = mint(self.settings.token_key, room=room, user=self.user_id, ttl_seconds=self.settings.token_ttl)
        if not self.expect("join", {"type": "join", "room": room, "token": token, "role": "subscriber",
                                    "display": self.user_id}, "joined"):
            return
        for _ in range(random.randint(*self.settings.pings)):
            self.wait()
            if not self.expect("ping", {"type": "ping"}, "pong"):
                return
        self.wait()
        self.expect("leave", {"type": "leave"}, "left")


class BadTokenUser(_Participant):
    """A client with a refused token: each join must come back ``unauthorized`` with the expected reason."""

    weight = 0.1

    def on_start(self) -> None:
        reasons = self.settings.bad_token_reasons
        start = random.randrange(len(reasons))
        self.reasons = itertools.cycle(reasons[start:] + reasons[:start])

    @task
    def refused_join(self) -> None:
        if self.ws is None and not self.connect():
            return
        reason = next(self.reasons)
        room = self.pick_room()
        frame: dict[str, Any] = {"type": "join", "room": room, "role": "subscriber", "display": self.user_id}
        token = bad_token(reason, self.settings.token_key, room, self.user_id, self.settings.token_ttl)
        if token is not None:
            frame["token"] = token
        reply, started, size = self.request("join (bad token)", frame)
        if reply is None:
            return
        if reply.get("type") == "error" and reply.get("code") == "unauthorized" and reply.get("reason") == reason:
            self.report("join (bad token)", started, size, None)
        elif reply.get("type") == "joined":
            self.report("join (bad token)", started, size, SignalingError(f"{reason} token was accepted"))
            self.close()  # joined by mistake: a fresh connection is the simplest way back
            return
        else:
            self.report("join (bad token)", started, size,
                        SignalingError(f"expected unauthorized ({reason}), got {error_of(reply)}"))
        self.wait()  # the connection stays open after a refusal: ping on it, then retry
        self.expect("ping", {"type": "ping"}, "pong")


class StagesShape(LoadTestShape):
    """Users over time from the stage table (``--stages`` / ``LOCUST_STAGES``); stops after the last stage."""

    def tick(self) -> tuple[int, float] | None:
        environment = self.runner.environment if self.runner is not None else None
        try:  # read on every tick: the web UI may edit the table between runs
            stages = parse_stages(option_values(environment)["stages"])
        except SettingsError as exc:
            log.error("locustfile: %s; stopping", exc)
            return None
        stage = stage_at(stages, self.get_run_time())
        return None if stage is None else (stage.users, stage.spawn_rate)
