"""Build every image the Compose stack needs on a machine that reaches no container registry (tests only).

``python tests/compose/images/build.py`` (``make images``), as root, with a running Docker Engine:

1. a Debian bookworm base from Debian's packages (``debootstrap --variant=minbase`` + ``docker
   import``), tagged ``debian:bookworm-slim``;
2. test-only stand-ins, from Debian's packages of the same versions, for the other bases our
   Dockerfiles start from and for the pinned upstream images of compose.yaml (``*.Dockerfile``
   beside this file; each says what of the upstream image it keeps), tagged with the upstream tags
   so that the compose.yaml under test is the file users run;
3. our own images, from the ``build:`` sections of compose.yaml, with the tags it names.

Grafana has no Debian package: no stand-in is built, and the test stack runs without it.

Builds use the host's network (``--network host``): on these machines the package mirrors are
reached through the host's resolver only. PyPI is never reached from inside a build: the wheels
our images install are fetched on the host (``pip wheel``, with the host's own CA) into a wheelhouse
that the Python stand-in carries. The debootstrap tarball and the wheelhouse are cached in
``SFU_LAB_IMAGE_CACHE`` (default ``/var/cache/sfu-lab-images``): a second run takes seconds.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
COMPOSE_FILE = REPO / "compose.yaml"
CACHE = Path(os.environ.get("SFU_LAB_IMAGE_CACHE", "/var/cache/sfu-lab-images"))
MIRROR = os.environ.get("SFU_LAB_DEBIAN_MIRROR", "http://deb.debian.org/debian")
SECURITY_MIRROR = os.environ.get("SFU_LAB_DEBIAN_SECURITY_MIRROR", "http://deb.debian.org/debian-security")
SUITE = "bookworm"
BASE_TAG = "debian:bookworm-slim"
STAND_IN_LABEL = "org.sfu-observability-lab.stand-in"
# The Python libraries the images install: every requirements file our Dockerfiles copy, and the
# Locust version the Locust stand-in installs.
REQUIREMENTS = sorted([*REPO.glob("services/*/requirements.txt"), REPO / "loadtest" / "requirements.txt"])
LOCUST_PIN = "locust==2.47.0"


@dataclass(frozen=True)
class StandIn:
    """A test-only image built from ``dockerfile`` and tagged ``tag`` (the upstream image's tag)."""

    tag: str
    dockerfile: str
    debian_package: str | None = None  # whose Debian version must equal the tag's version
    needs_wheels: bool = False


# Order matters: each one's FROM is built before it.
STAND_INS = (
    StandIn("python:3.11-slim-bookworm", "python-3.11-slim-bookworm.Dockerfile", needs_wheels=True),
    StandIn("locustio/locust:2.47.0", "locust-2.47.0.Dockerfile"),
    StandIn("prom/prometheus:v2.42.0", "prometheus-2.42.0.Dockerfile", "prometheus"),
    StandIn("prom/alertmanager:v0.25.0", "alertmanager-0.25.0.Dockerfile", "prometheus-alertmanager"),
    StandIn("prom/node-exporter:v1.5.0", "node-exporter-1.5.0.Dockerfile", "prometheus-node-exporter"),
)
NO_STAND_IN = {"grafana/grafana-oss": "Grafana has no Debian package"}


def log(message: str) -> None:
    print(f"[images] {message}", flush=True)


def run(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=True, text=True, **kwargs)  # type: ignore[call-overload]


def image_exists(tag: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", tag], capture_output=True).returncode == 0


def base_tarball() -> Path:
    """The debootstrapped bookworm root as a tarball, made once and cached."""
    tarball = CACHE / f"{SUITE}-minbase.tar"
    if tarball.exists():
        return tarball
    if not shutil.which("debootstrap"):
        raise SystemExit("debootstrap is not installed: apt-get install debootstrap (make deps does)")
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as work:
        root = Path(work) / "root"
        log(f"debootstrap {SUITE} from {MIRROR} (once; cached in {tarball})")
        run("debootstrap", "--variant=minbase", SUITE, str(root), MIRROR, stdout=subprocess.DEVNULL)
        (root / "etc/apt/sources.list").write_text(
            f"deb {MIRROR} {SUITE} main\ndeb {MIRROR} {SUITE}-updates main\n"
            f"deb {SECURITY_MIRROR} {SUITE}-security main\n")
        # As Debian's slim images do: no apt caches or docs in the layers built on top.
        (root / "etc/apt/apt.conf.d/docker-clean").write_text(
            'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb || true"; };\n'
            'APT::Install-Recommends "false";\n')
        for folder in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for item in (root / folder).glob("*"):
                if item.is_file():
                    item.unlink()
        partial = tarball.with_suffix(".partial")
        run("tar", "--numeric-owner", "-C", str(root), "-cf", str(partial), ".")
        partial.rename(tarball)
    return tarball


def build_base() -> None:
    if image_exists(BASE_TAG):
        log(f"{BASE_TAG}: present")
        return
    tarball = base_tarball()
    log(f"docker import {tarball.name} as {BASE_TAG}")
    run("docker", "import", "--change", 'CMD ["bash"]', "--change", f"LABEL {STAND_IN_LABEL}=true",
        str(tarball), BASE_TAG, stdout=subprocess.DEVNULL)


def wheelhouse() -> Path:
    """Wheels for every library our images install, fetched on the host, cached by the pins' hash."""
    text = "".join(p.read_text() for p in REQUIREMENTS) + LOCUST_PIN
    folder = CACHE / f"wheels-{hashlib.sha256(text.encode()).hexdigest()[:16]}"
    if (folder / ".complete").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    log(f"pip wheel {len(REQUIREMENTS)} requirement files + {LOCUST_PIN} into {folder}")
    args = [a for p in REQUIREMENTS for a in ("-r", str(p))]
    run(sys.executable, "-m", "pip", "wheel", "-q", "--wheel-dir", str(folder), *args, LOCUST_PIN)
    (folder / ".complete").touch()
    return folder


def debian_version(package: str) -> str:
    """The candidate version of ``package`` from the base image's own apt sources."""
    out = run("docker", "run", "--rm", "--network", "host", BASE_TAG, "sh", "-c",
              f"apt-get update -qq >/dev/null && apt-cache policy {package}", capture_output=True).stdout
    found = re.search(r"Candidate:\s*(\S+)", out)
    if not found or found.group(1) == "(none)":
        raise SystemExit(f"Debian has no candidate for {package}:\n{out}")
    return found.group(1)


def docker_build(tag: str, dockerfile: Path, context: Path, *labels: str) -> None:
    started = time.monotonic()
    label_args = [a for label in labels for a in ("--label", label)]
    done = subprocess.run(["docker", "build", "--network", "host", "-t", tag, "-f", str(dockerfile), *label_args,
                           str(context)], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"docker build of {tag} failed:\n{(done.stdout + done.stderr)[-4000:]}")
    log(f"{tag}: built in {time.monotonic() - started:.0f} s")


def build_stand_in(stand_in: StandIn) -> None:
    dockerfile = HERE / stand_in.dockerfile
    if stand_in.debian_package:
        wanted = stand_in.tag.rsplit(":v", 1)[1]
        have = debian_version(stand_in.debian_package)
        if not have.startswith(wanted + "+") and not have.startswith(wanted + "-"):
            raise SystemExit(f"{stand_in.tag}: Debian's {stand_in.debian_package} is {have}, not {wanted}")
    with tempfile.TemporaryDirectory() as context:
        if stand_in.needs_wheels:
            shutil.copytree(wheelhouse(), Path(context) / "wheels", ignore=shutil.ignore_patterns(".complete"))
        docker_build(stand_in.tag, dockerfile, Path(context), f"{STAND_IN_LABEL}=true")


def compose_images() -> tuple[dict[str, tuple[Path, Path]], list[str]]:
    """compose.yaml's own images (tag -> context, Dockerfile) and the upstream images it pulls."""
    services = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    ours: dict[str, tuple[Path, Path]] = {}
    upstream: list[str] = []
    for service in services.values():
        build = service.get("build")
        if build is None:
            upstream.append(service["image"])
            continue
        if isinstance(build, str):
            build = {"context": build}
        context = (REPO / build["context"]).resolve()
        ours[service["image"]] = (context, context / build.get("dockerfile", "Dockerfile"))
    return ours, sorted(set(upstream))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--only-stand-ins", action="store_true", help="skip our own images")
    args = parser.parse_args(argv)
    started = time.monotonic()
    ours, upstream = compose_images()
    known = {s.tag for s in STAND_INS}
    for tag in upstream:
        if tag not in known and tag.split(":")[0] not in NO_STAND_IN:
            raise SystemExit(f"compose.yaml pulls {tag}, which has no stand-in here: add one to {__file__}")
    build_base()
    for stand_in in STAND_INS:
        build_stand_in(stand_in)
    for tag in upstream:
        if tag.split(":")[0] in NO_STAND_IN:
            log(f"{tag}: not built ({NO_STAND_IN[tag.split(':')[0]]}); the test stack runs without it")
    if not args.only_stand_ins:
        for tag, (context, dockerfile) in ours.items():
            docker_build(tag, dockerfile, context)
    log(f"done in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
