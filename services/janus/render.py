"""Render the Janus configuration templates of one SFU node from environment variables.

One renderer serves the native runner, the tests and the container entrypoint, so every node is
configured from the same templates (``templates/*.jcfg``, ``${VAR}`` placeholders). Standard
library only: the container runs it with Debian's ``python3`` and nothing else.

    python3 -m janus_node.render --out /run/janus      # reads JANUS_* from the environment
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import string
import sys
from collections.abc import Mapping
from pathlib import Path

TEMPLATE_DIR = Path(__file__).with_name("templates")

# Values a node can run without being told. Secrets and addresses have no default.
DEFAULTS: dict[str, str] = {
    "JANUS_NODE_NAME": "sfu-node",
    # Debian's multiarch folder of the janus package (x86_64, aarch64, ...).
    "JANUS_LIB_FOLDER": next(iter(sorted(glob.glob("/usr/lib/*-linux-gnu/janus"))), "/usr/lib/x86_64-linux-gnu/janus"),
    "JANUS_DEBUG_LEVEL": "4",
    "JANUS_EVENT_LOOPS": "2",
    "JANUS_SESSION_TIMEOUT": "60",
    "JANUS_RTP_PORT_RANGE": "20000-40000",
    "JANUS_WS_PORT": "8188",
    "JANUS_WS_IP": "0.0.0.0",
    "JANUS_ADMIN_PORT": "7088",
    "JANUS_ADMIN_IP": "0.0.0.0",
    "JANUS_STATS_PERIOD": "5",
    "JANUS_EVENTS_ENABLED": "false",
    # What the exporter reads: media (32), WebRTC (16), handles (2). Transport (128) would fire for
    # every Admin request; plugin and session events are the bulk of the stream and unused.
    "JANUS_EVENTS_MASK": "handles,webrtc,media",
    "JANUS_EVENTS_BACKEND": "http://127.0.0.1:9/unused",
}
REQUIRED = ("JANUS_ADMIN_SECRET", "JANUS_INTERFACE")
_CHECKS: dict[str, tuple[str, str]] = {
    "JANUS_DEBUG_LEVEL": (r"[0-7]", "an integer 0-7"),
    "JANUS_EVENT_LOOPS": (r"\d{1,3}", "a non-negative integer"),
    "JANUS_SESSION_TIMEOUT": (r"\d{1,5}", "seconds as a non-negative integer"),
    "JANUS_RTP_PORT_RANGE": (r"\d{1,5}-\d{1,5}", "a port range such as 20000-40000"),
    "JANUS_WS_PORT": (r"\d{1,5}", "a TCP port"),
    "JANUS_ADMIN_PORT": (r"\d{1,5}", "a TCP port"),
    "JANUS_STATS_PERIOD": (r"\d{1,4}", "seconds as a non-negative integer"),
    "JANUS_EVENTS_ENABLED": (r"true|false", "true or false"),
}


class ConfigError(ValueError):
    """A required value is missing or a value is malformed; the message names each one."""


def resolve(env: Mapping[str, str]) -> dict[str, str]:
    """Merge ``env`` over the defaults and check every value, reporting all problems at once."""
    values = {**DEFAULTS, **{k: v for k, v in env.items() if k.startswith("JANUS_")}}
    values.setdefault("JANUS_ICE_ENFORCE_LIST", values.get("JANUS_INTERFACE", ""))
    problems = [f"{name} is required and has no default" for name in REQUIRED if not values.get(name)]
    for name, (pattern, meaning) in _CHECKS.items():
        if not re.fullmatch(pattern, values[name]):
            problems.append(f"{name}={values[name]!r} is not {meaning}")
    for name, value in values.items():
        if '"' in value or "\n" in value:
            problems.append(f"{name} must not contain quotes or newlines")
    if problems:
        raise ConfigError("; ".join(problems))
    return values


def render(out_dir: Path, env: Mapping[str, str]) -> dict[str, str]:
    """Write every template into ``out_dir`` with ``env`` substituted; return the values used."""
    values = resolve(env)
    values["JANUS_CONFIGS_FOLDER"] = str(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for template in sorted(TEMPLATE_DIR.glob("*.jcfg")):
        text = string.Template(template.read_text()).substitute(values)
        (out_dir / template.name).write_text(text)
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder to write the .jcfg files into")
    args = parser.parse_args(argv)
    try:
        render(args.out, os.environ)
    except ConfigError as exc:
        print(f"janus config: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
