"""Lab overrides of the alert rules, and a Prometheus folder laid out for one target set.

The committed rule files (``prometheus/rules/*.yml``) are the only copy of the rules. A lab that
needs alerts within minutes (the incident scenario) shortens them through an override file such as
``prometheus/overrides/fast.yml``::

    alerts:
      SFUNackStorm:
        for: 30s            # replaces the rule's `for`
        windows:            # duration in the rule -> duration in the lab, in range selectors
          5m: 1m            # ([5m], [5m:1m]) and after `offset`
          10m: 2m

Only alert rules change: recording rules keep their names and windows. Every override must
change something: an unknown alert, an unknown key, a bad duration or a window the alert's
expression does not contain is an :class:`OverrideError`, so an override cannot silently rot when a
rule changes.

``render_prometheus`` lays out a self-contained folder Prometheus can run from: ``prometheus.yml``
(the committed file, unchanged), ``rules/`` (overridden or copied) and ``targets/active/`` (the
chosen target set, ``compose`` or ``native``, optionally with some jobs' targets replaced)::

    python -m lab.rule_overrides --out /tmp/prom --target-set native --overrides prometheus/overrides/fast.yml
    prometheus --config.file=/tmp/prom/prometheus.yml ...
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO_ROOT / "prometheus"
TARGET_SETS = ("compose", "native")
# Prometheus's duration syntax (model.ParseDuration), one unit at most once, largest first.
DURATION = re.compile(r"^(?=\d)(\d+y)?(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?$")
ALERT_KEYS = {"for", "windows"}


class OverrideError(ValueError):
    """The override file is malformed or does not match the committed rules."""


@dataclass(frozen=True)
class AlertOverride:
    """What a lab changes in one alert rule."""

    for_: str | None = None
    windows: Mapping[str, str] = field(default_factory=dict)


def _duration(text: Any, where: str) -> str:
    text = str(text).strip()
    if not DURATION.match(text):
        raise OverrideError(f"{where}: {text!r} is not a Prometheus duration (e.g. 30s, 1m, 1h30m)")
    return text


def parse_overrides(document: Any, source: str = "overrides") -> dict[str, AlertOverride]:
    """Check an override document (already parsed YAML) and return alert name -> override."""
    if not isinstance(document, dict) or set(document) != {"alerts"} or not isinstance(document["alerts"], dict):
        raise OverrideError(f"{source}: expected one top-level key `alerts` mapping alert names to overrides")
    result = {}
    for name, spec in document["alerts"].items():
        where = f"{source}: alert {name}"
        if not isinstance(spec, dict) or not spec or set(spec) - ALERT_KEYS:
            raise OverrideError(f"{where}: expected a mapping with keys among {sorted(ALERT_KEYS)}")
        windows = spec.get("windows") or {}
        if not isinstance(windows, dict):
            raise OverrideError(f"{where}: `windows` maps a duration in the rule to the lab's duration")
        result[str(name)] = AlertOverride(
            for_=_duration(spec["for"], f"{where} for") if "for" in spec else None,
            windows={_duration(k, f"{where} windows"): _duration(v, f"{where} windows") for k, v in windows.items()},
        )
    return result


def load_overrides(path: Path) -> dict[str, AlertOverride]:
    """Read and check an override file."""
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise OverrideError(f"{path}: not YAML: {exc}") from exc
    return parse_overrides(document, str(path))


def substitute_window(expr: str, old: str, new: str) -> tuple[str, int]:
    """Replace duration ``old`` by ``new`` in range selectors and after ``offset``; return (expr, count)."""
    o = re.escape(old)
    expr, ranges = re.subn(r"\[(\s*)" + o + r"(\s*(?::[^\]]*)?)\]", lambda m: f"[{m[1]}{new}{m[2]}]", expr)
    expr, offsets = re.subn(r"\boffset(\s+)" + o + r"(?![\w])", lambda m: f"offset{m[1]}{new}", expr)
    return expr, ranges + offsets


def apply_overrides(documents: Mapping[str, Any], overrides: Mapping[str, AlertOverride]) -> dict[str, Any]:
    """Apply ``overrides`` to rule documents (file name -> parsed rule file); return new documents.

    The input is not modified. Raises :class:`OverrideError` when an override names no alert rule or
    a window its expression does not contain.
    """
    result: dict[str, Any] = {}
    seen: set[str] = set()
    for name, document in documents.items():
        groups = []
        for group in document.get("groups", []):
            rules = []
            for rule in group.get("rules", []):
                rule = dict(rule)
                override = overrides.get(rule.get("alert", ""))
                if override is not None:
                    seen.add(rule["alert"])
                    if override.for_ is not None:
                        rule["for"] = override.for_
                    expr = str(rule["expr"])
                    for old, new in override.windows.items():
                        expr, count = substitute_window(expr, old, new)
                        if not count:
                            raise OverrideError(f"alert {rule['alert']}: its expression has no [{old}] and no "
                                                f"offset {old} to shorten")
                    rule["expr"] = expr
                rules.append(rule)
            groups.append({**group, "rules": rules})
        result[name] = {**document, "groups": groups}
    unknown = set(overrides) - seen
    if unknown:
        raise OverrideError(f"no alert rule named {', '.join(sorted(unknown))}")
    return result


class _Dumper(yaml.SafeDumper):
    """Block style for multi-line expressions, so the output reads like the source."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def render_rules(out_dir: Path, overrides_file: Path | None = None,
                 rules_dir: Path = PROMETHEUS_DIR / "rules") -> list[Path]:
    """Write the committed rules to ``out_dir`` with ``overrides_file`` applied (copied as they are without one)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sources = sorted(Path(rules_dir).glob("*.yml"))
    if not sources:
        raise OverrideError(f"no rule files in {rules_dir}")
    written = []
    if overrides_file is None:
        for source in sources:
            written.append(Path(shutil.copy2(source, out_dir / source.name)))
        return written
    documents = {source.name: yaml.safe_load(source.read_text()) for source in sources}
    changed = apply_overrides(documents, load_overrides(Path(overrides_file)))
    for name, document in changed.items():
        path = out_dir / name
        header = (f"# Generated from prometheus/rules/{name} with the overrides of {Path(overrides_file).name}\n"
                  f"# by lab.rule_overrides. Do not edit: change the rule or the override file.\n")
        path.write_text(header + yaml.dump(document, Dumper=_Dumper, sort_keys=False, width=4096,
                                           allow_unicode=True))
        written.append(path)
    return written


def render_prometheus(out_dir: Path, *, target_set: str = "native", overrides_file: Path | None = None,
                      targets: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
                      prometheus_dir: Path = PROMETHEUS_DIR) -> Path:
    """Lay out a folder Prometheus runs from and return its ``prometheus.yml``.

    ``target_set`` picks ``prometheus/targets/<set>/`` as ``targets/active/``. ``targets`` replaces
    whole jobs' target files: job name -> file_sd groups (``{"targets": [...], "labels": {...}}``);
    labels ``service``, ``env`` and ``region`` missing from a group are taken from the set's own file
    for that job, so a test can point a job at the port it started a service on.
    """
    if target_set not in TARGET_SETS:
        raise ValueError(f"target_set must be one of {', '.join(TARGET_SETS)}, not {target_set!r}")
    prometheus_dir = Path(prometheus_dir)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = out_dir / "prometheus.yml"
    shutil.copy2(prometheus_dir / "prometheus.yml", config)
    render_rules(out_dir / "rules", overrides_file, prometheus_dir / "rules")
    active = out_dir / "targets" / "active"
    if active.exists():
        shutil.rmtree(active)
    shutil.copytree(prometheus_dir / "targets" / target_set, active)
    for job, groups in (targets or {}).items():
        path = active / f"{job}.yml"
        if not path.exists():
            raise ValueError(f"target set {target_set} has no job {job!r}")
        defaults = {k: v for k, v in yaml.safe_load(path.read_text())[0].get("labels", {}).items()
                    if k in ("service", "env", "region")}
        document = [{"targets": list(g["targets"]), "labels": {**defaults, **dict(g.get("labels", {}))}}
                    for g in groups]
        path.write_text(f"# Replaced by lab.rule_overrides.render_prometheus for job {job}.\n"
                        + yaml.safe_dump(document, sort_keys=False))
    return config


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lab.rule_overrides", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder to write (created if missing)")
    parser.add_argument("--target-set", choices=TARGET_SETS, default="native",
                        help="which prometheus/targets/<set>/ becomes targets/active/")
    parser.add_argument("--overrides", type=Path, default=None,
                        help="override file, e.g. prometheus/overrides/fast.yml (none: the rules as committed)")
    parser.add_argument("--rules-only", action="store_true",
                        help="write only the rule files into --out (no prometheus.yml, no targets)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = argument_parser().parse_args(argv)
    try:
        if args.rules_only:
            for path in render_rules(args.out, args.overrides):
                print(path)
        else:
            print(render_prometheus(args.out, target_set=args.target_set, overrides_file=args.overrides))
    except (OverrideError, OSError, ValueError) as exc:
        print(f"lab.rule_overrides: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
