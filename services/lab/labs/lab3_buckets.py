"""Lab 3: histogram buckets: the client library's defaults against the article's, for 50-500 ms.

The signaling service's ICE histogram uses the article's buckets (``signaling.metrics``); the
Python client's defaults are ``prometheus_client.Histogram.DEFAULT_BUCKETS``. The trainee lists
each layout's bucket bounds between 50 and 500 ms and the widest gap there (how far a quantile
inside that range can be off after linear interpolation). The check reads the article's bounds
from the live stack: the ``le`` values Prometheus scraped from signaling, cross-checked with
signaling's own /metrics.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Histogram
from prometheus_client.parser import text_string_to_metric_families

from lab.labs.common import SIGNALING_JOB, Answers, Check, LiveStack, http_text, instant
from lab.labs.signaling_names import ICE_NEGOTIATION

TITLE = "histogram buckets"
LOW_MS, HIGH_MS = 50, 500


def in_range(bounds: list[float]) -> list[int]:
    """Bucket bounds (seconds) inside [50 ms, 500 ms], in whole milliseconds."""
    return sorted({round(b * 1000) for b in bounds if LOW_MS / 1000 <= b <= HIGH_MS / 1000})


def widest_gap(bounds_ms: list[int]) -> int:
    return max((b - a for a, b in zip(bounds_ms, bounds_ms[1:], strict=False)), default=0)


def _as_ms_list(value: Any) -> list[int] | None:
    items = value if isinstance(value, list) else str(value).replace(",", " ").split()
    try:
        return sorted({round(float(item)) for item in items})
    except (TypeError, ValueError):
        return None


def live_bounds(stack: LiveStack) -> tuple[list[float], list[float]]:
    """The ICE histogram's ``le`` bounds as Prometheus has them, and as signaling's /metrics exposes them."""
    scraped = instant(stack.prometheus, f'count by (le) ({ICE_NEGOTIATION}_bucket{{job="{SIGNALING_JOB}"}})')
    in_prometheus = [float(s["metric"]["le"]) for s in scraped if s["metric"]["le"] != "+Inf"]
    at_source = [float(s.labels["le"]) for f in text_string_to_metric_families(http_text(f"{stack.signaling}/metrics"))
                 if f.name == ICE_NEGOTIATION for s in f.samples if s.name.endswith("_bucket")
                 and s.labels["le"] != "+Inf"]
    return in_prometheus, at_source


def check(answers: Answers, stack: LiveStack, **_: object) -> Check:
    result = Check(3, TITLE, answers, stack)
    in_prometheus, at_source = live_bounds(stack)
    if not in_prometheus:
        result.lack(f"Prometheus has no {ICE_NEGOTIATION}_bucket series yet: signaling exposes the histogram's "
                    "buckets after its first ICE negotiation: run `lab demo`, wait 15 s for a scrape, check again")
        return result
    article = in_range(in_prometheus)
    default = in_range(list(Histogram.DEFAULT_BUCKETS))
    if at_source and in_range(at_source) != article:
        result.lack(f"Prometheus's buckets {article} differ from signaling's /metrics {in_range(at_source)}: "
                    "wait for the next scrape (15 s)")
    expected = {"article_buckets_ms": article, "default_buckets_ms": default}
    hints = {"article_buckets_ms": f"the le values of {ICE_NEGOTIATION}_bucket between 50 and 500 ms "
                                   f"(query count by (le) ({ICE_NEGOTIATION}_bucket))",
             "default_buckets_ms": "prometheus_client.Histogram.DEFAULT_BUCKETS between 50 and 500 ms"}
    for key, truth in expected.items():
        value = result.answer(key, f"{hints[key]}, in milliseconds, e.g. [50, 100]")
        if value is None:
            continue
        mine = _as_ms_list(value)
        if mine is None:
            result.lack(f"lab3.{key} must be a list of numbers in milliseconds, not {value!r}")
        elif mine != truth:
            result.lack(f"lab3.{key} is {mine}: not the bounds of {hints[key]} (you have "
                        f"{len(mine)}, there are {len(truth)})")
        else:
            result.good(f"{key.split('_')[0]} buckets in 50-500 ms: {truth}")
    gap = result.answer("widest_gap_ms", "the widest bucket inside 50-500 ms of the article's layout, in ms: "
                                         "the most a p95 there can be off by interpolation")
    if gap is not None:
        try:
            correct = round(float(gap)) == widest_gap(article)
        except (TypeError, ValueError):
            correct = False
        if correct:
            result.good(f"widest gap {widest_gap(article)} ms (the defaults' is {widest_gap(default)} ms: "
                        "neither resolves a p95 between 250 and 500 ms)")
        else:
            result.lack(f"lab3.widest_gap_ms is {gap!r}: subtract neighbouring bounds of your "
                        "article_buckets_ms list and take the largest difference")
    return result
