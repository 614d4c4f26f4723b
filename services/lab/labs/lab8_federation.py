"""Lab 8: federation: a cross-region total from the global Prometheus.

``lab federation up`` starts two regional servers (each scrapes half the SFU nodes) and a global
one that federates their recording rules. The trainee writes a cross-region total and the same
figure per region. The check runs both on the global server and compares: the regions in the
per-region answer, their sum against the total, and the total against the same query on each
regional server, all at one instant a little in the past (the global server lags a scrape).
"""

from __future__ import annotations

import re

import yaml

from lab.labs.common import Answers, Check, LiveStack, PrometheusError, StackNotUp, instant, now, prometheus_api
from lab.labs.federation import GLOBAL, REGION_PORTS, urls

TITLE = "federation"
REGIONS = tuple(name.removeprefix("prometheus-") for name in REGION_PORTS)
TOLERANCE = 0.05
START = "start it: `lab federation up` (add `--interval 2s` for a quick look), then wait a minute"


def _seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration)) or 15.0


def _total(result: list[dict]) -> float | None:
    return float(result[0]["value"][1]) if len(result) == 1 else None


def check(answers: Answers, stack: LiveStack, **_: object) -> Check:
    result = Check(8, TITLE, answers, stack)
    total_query = result.answer("cross_region_query", "a PromQL query for one cross-region total, e.g. SFU egress "
                                                      "or saturation summed over every node of every region")
    per_region_query = result.answer("per_region_query", "the same figure per region (sum by (region) ...)")
    servers = urls(stack)
    world = servers[GLOBAL]
    try:
        config = yaml.safe_load(prometheus_api(world, "/api/v1/status/config")["yaml"])
    except (StackNotUp, PrometheusError) as exc:
        result.lack(f"the global Prometheus does not answer at {world} ({exc}): {START}")
        return result
    interval = _seconds(str(config.get("global", {}).get("scrape_interval", "15s")))
    up = {s["metric"].get("region") for s in instant(world, 'count by (region) (up{job="sfu_nodes"} == 1)')}
    if not set(REGIONS) <= up:
        result.lack(f"the global server sees SFU nodes up in {sorted(r for r in up if r) or 'no region'}, not in "
                    f"both {', '.join(REGIONS)} yet: wait for two federation scrapes ({2 * interval:g} s)")
        return result
    result.good(f"the global server federates both regions ({', '.join(REGIONS)})")
    if not total_query or not per_region_query:
        return result
    at = now() - 3 * interval
    total = result.trainee_query("cross_region_query", total_query, at=at, prometheus=world)
    per_region = result.trainee_query("per_region_query", per_region_query, at=at, prometheus=world)
    if total is None or per_region is None:
        return result
    value = _total(total)
    if value is None or "region" in total[0]["metric"]:
        result.lack(f"lab8.cross_region_query must give one series, the total over every region; it gives "
                    f"{len(total)} series{' with a region label' if total and 'region' in total[0]['metric'] else ''}")
        return result
    if value <= 0:
        result.lack("lab8.cross_region_query gives 0, which proves nothing: total a figure that has data now, e.g. "
                    "sum(instance:sfu_saturation:index), or egress while `lab demo` runs")
        return result
    regions = {s["metric"].get("region", ""): float(s["value"][1]) for s in per_region}
    if set(regions) != set(REGIONS):
        result.lack(f"lab8.per_region_query gives regions {sorted(regions)}; it must give one series per region "
                    f"({', '.join(REGIONS)}): sum by (region) (...)")
    elif abs(sum(regions.values()) - value) > TOLERANCE * value:
        result.lack(f"lab8.per_region_query's regions add up to {sum(regions.values()):.4g}, not your total "
                    f"{value:.4g}: use the same series in both queries")
    else:
        result.good(f"per region: {', '.join(f'{r} {v:.4g}' for r, v in sorted(regions.items()))}")
    own = {}
    for name, region in zip(REGION_PORTS, REGIONS, strict=True):
        try:
            own[region] = _total(instant(servers[name], total_query, at)) or 0.0
        except (StackNotUp, PrometheusError) as exc:
            result.lack(f"the regional server {name} does not answer your query ({exc}): {START}")
            return result
    if abs(sum(own.values()) - value) > TOLERANCE * value:
        result.lack(f"your total on the global server ({value:.4g}) is not the sum of the regional servers' own "
                    f"({' + '.join(f'{v:.4g}' for v in own.values())}): query federated series (recording rules, "
                    "instance:* or job:*), which carry every region")
    else:
        result.good(f"cross-region total {value:.4g} on the global server = region-a {own[REGIONS[0]]:.4g} + "
                    f"region-b {own[REGIONS[1]]:.4g} on the regional servers")
    return result
