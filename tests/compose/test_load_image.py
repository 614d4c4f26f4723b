"""The load profile's image (loadtest/Dockerfile): the pinned Locust image plus bots and scenarios."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "loadtest" / "Dockerfile"


def steps() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_hadolint_finds_nothing_in_the_load_image():
    hadolint = Path(sys.executable).with_name("hadolint")
    run = subprocess.run([str(hadolint), "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and not run.stdout.strip(), run.stdout


def test_the_load_image_builds_on_the_pinned_locust_the_tests_run_and_ends_as_a_numeric_user():
    from importlib.metadata import version

    bases = [args for op, args in steps() if op == "FROM"]
    assert bases == [f"locustio/locust:{version('locust')}"]
    users = [args for op, args in steps() if op == "USER"]
    assert users[-1].isdigit() and users[-1] != "0"
    assert [op for op, _ in steps()].count("HEALTHCHECK") == 1


def test_the_load_image_pins_every_library_it_installs():
    for line in (REPO / "loadtest" / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            assert re.fullmatch(r"[A-Za-z0-9_.-]+==\d+(\.\d+)*", line), line


def test_the_build_context_sends_only_what_the_load_image_copies():
    ignored = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    assert ignored[0] == "**" and "!loadtest/" in ignored and "!services/" in ignored
    copied = [args.split()[0] for op, args in steps() if op == "COPY"]
    assert all(src.split("/")[0] in ("loadtest", "services") for src in copied), copied
