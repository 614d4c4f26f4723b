"""Render the committed ``alertmanager/alertmanager.yml`` into the file Alertmanager runs with.

Alertmanager expands no environment variables, and the committed file holds no secret. Rendering:

- ``ALERTMANAGER_SLACK_WEBHOOK_URL`` / ``ALERTMANAGER_PAGERDUTY_ROUTING_KEY``: when set and not
  empty, the value is written to ``OUT/secrets/slack_webhook_url`` / ``OUT/secrets/pagerduty_routing_key``
  (mode 0600) and the receivers' ``api_url_file`` / ``routing_key_file`` point there; the value itself
  never enters the configuration. When unset or empty, every Slack / PagerDuty integration is
  removed: they are off unless set.
- ``ALERT_SINK_URL``: when set, the URL of every webhook integration (the local sink) becomes it,
  e.g. ``http://127.0.0.1:9099/alerts`` for the native runner.
- ``timings`` (tests and labs only): replaces the root route's ``group_wait`` / ``group_interval`` /
  ``repeat_interval``.

CLI: ``python -m alert_sink.amconfig --out DIR [--sink-url URL] [--secrets-dir-seen-as PATH]``; prints the
rendered file's path.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
ALERTMANAGER_YML = REPO_ROOT / "alertmanager" / "alertmanager.yml"
SLACK_ENV = "ALERTMANAGER_SLACK_WEBHOOK_URL"
PAGERDUTY_ENV = "ALERTMANAGER_PAGERDUTY_ROUTING_KEY"
SINK_URL_ENV = "ALERT_SINK_URL"
TIMINGS = ("group_wait", "group_interval", "repeat_interval")
# integration key in a receiver -> (field holding the secret's file, file name under OUT/secrets/)
SECRET_FILES = {
    "slack_configs": ("api_url_file", "slack_webhook_url"),
    "pagerduty_configs": ("routing_key_file", "pagerduty_routing_key"),
}


def render_document(document: Mapping[str, Any], *, secrets_dir: Path, sink_url: str | None = None,
                    enabled: Mapping[str, bool], timings: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Return a rendered copy of a parsed Alertmanager configuration.

    ``enabled`` maps ``slack_configs`` / ``pagerduty_configs`` to whether that integration stays.
    """
    result = dict(document)
    receivers = []
    for receiver in document.get("receivers", []):
        receiver = dict(receiver)
        for key, (file_field, file_name) in SECRET_FILES.items():
            if key not in receiver:
                continue
            if enabled.get(key):
                receiver[key] = [{**c, file_field: str(secrets_dir / file_name)} for c in receiver[key]]
            else:
                del receiver[key]
        if sink_url and "webhook_configs" in receiver:
            receiver["webhook_configs"] = [{**c, "url": sink_url} for c in receiver["webhook_configs"]]
        receivers.append(receiver)
    result["receivers"] = receivers
    if timings:
        unknown = set(timings) - set(TIMINGS)
        if unknown:
            raise ValueError(f"unknown timings {sorted(unknown)}; known: {', '.join(TIMINGS)}")
        result["route"] = {**document["route"], **timings}
    return result


def render_alertmanager(out_dir: Path, *, sink_url: str | None = None, slack_webhook_url: str | None = None,
                        pagerduty_routing_key: str | None = None, timings: Mapping[str, str] | None = None,
                        source: Path = ALERTMANAGER_YML, secrets_dir_seen_as: Path | None = None) -> Path:
    """Write ``out_dir/alertmanager.yml`` (and ``out_dir/secrets/`` for set secrets); return the file.

    ``secrets_dir_seen_as`` is where Alertmanager finds ``out_dir/secrets`` when it runs elsewhere
    (a container mounting ``out_dir`` at /etc/alertmanager: ``/etc/alertmanager/secrets``).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    secrets_dir = (out_dir / "secrets").resolve()
    values = {"slack_configs": slack_webhook_url or "", "pagerduty_configs": pagerduty_routing_key or ""}
    for key, value in values.items():
        path = secrets_dir / SECRET_FILES[key][1]
        if value:
            secrets_dir.mkdir(mode=0o700, exist_ok=True)
            path.touch(mode=0o600)
            path.chmod(0o600)
            path.write_text(value.strip())
        elif path.exists():
            path.unlink()
    document = yaml.safe_load(Path(source).read_text())
    rendered = render_document(document, secrets_dir=Path(secrets_dir_seen_as or secrets_dir), sink_url=sink_url,
                               enabled={k: bool(v) for k, v in values.items()}, timings=timings)
    config = out_dir / "alertmanager.yml"
    config.write_text(f"# Rendered from {Path(source).name} by alert_sink.amconfig. Do not edit.\n"
                      + yaml.safe_dump(rendered, sort_keys=False, width=4096))
    return config


def render_from_env(out_dir: Path, env: Mapping[str, str] = os.environ, *, sink_url: str | None = None,
                    timings: Mapping[str, str] | None = None, source: Path = ALERTMANAGER_YML,
                    secrets_dir_seen_as: Path | None = None) -> Path:
    """:func:`render_alertmanager` with the secrets and sink URL from ``env`` (``sink_url`` wins)."""
    return render_alertmanager(out_dir, sink_url=sink_url or env.get(SINK_URL_ENV) or None,
                               slack_webhook_url=env.get(SLACK_ENV), pagerduty_routing_key=env.get(PAGERDUTY_ENV),
                               timings=timings, source=source, secrets_dir_seen_as=secrets_dir_seen_as)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m alert_sink.amconfig", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description=f"Render alertmanager/alertmanager.yml for Alertmanager. Reads {SLACK_ENV}, {PAGERDUTY_ENV} "
                    f"(off unless set) and {SINK_URL_ENV}.")
    parser.add_argument("--out", type=Path, required=True, help="folder to write alertmanager.yml and secrets/ into")
    parser.add_argument("--sink-url", default=None, help=f"webhook sink URL [{SINK_URL_ENV}; default: as committed]")
    parser.add_argument("--source", type=Path, default=ALERTMANAGER_YML, help="configuration to render")
    parser.add_argument("--secrets-dir-seen-as", type=Path, default=None,
                        help="where Alertmanager finds OUT/secrets if it runs elsewhere, "
                             "e.g. /etc/alertmanager/secrets [default: OUT/secrets]")
    args = parser.parse_args(argv)
    try:
        print(render_from_env(args.out, sink_url=args.sink_url, source=args.source,
                              secrets_dir_seen_as=args.secrets_dir_seen_as))
    except (OSError, ValueError, yaml.YAMLError) as exc:
        print(f"alert_sink.amconfig: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
