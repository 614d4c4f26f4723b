"""Lab 1: read the signaling metrics: active rooms and the p95 ICE negotiation time.

The trainee writes two PromQL queries. The check runs them over the last ``WINDOW`` seconds on the
live Prometheus and compares them, step by step, with what it computes itself: the signaling
service's own rooms gauge, and a histogram_quantile over the ICE histogram's buckets. It also reads
signaling's /metrics to show the gauge at the source.
"""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from lab.labs.common import SIGNALING_JOB, Answers, Check, LiveStack, StackNotUp, finite, http_text, matrix, now
from lab.labs.signaling_names import ICE_NEGOTIATION, ROOMS_ACTIVE

TITLE = "read the signaling metrics"
WINDOW = 900.0  # the last 15 minutes
STEP = 15.0  # Prometheus's scrape interval
TOLERANCE = 0.25  # relative: a p95 over another window or status filter still agrees this far
TRUE_ROOMS = f'sum({ROOMS_ACTIVE}{{job="{SIGNALING_JOB}"}})'
TRUE_P95 = f'histogram_quantile(0.95, sum by (le) (rate({ICE_NEGOTIATION}_bucket{{job="{SIGNALING_JOB}"}}[5m])))'
DEMO = ("open a room with media: `lab demo --seconds 60` (it runs ICE through signaling; on a fresh stack "
        "run it twice), then check again")


def _points(result: list[dict]) -> dict[float, float]:
    (series,) = result
    return {float(t): float(v) for t, v in series["values"]}


def source_rooms(stack: LiveStack) -> float | None:
    """signaling_rooms_active as signaling's own /metrics says it now."""
    for family in text_string_to_metric_families(http_text(f"{stack.signaling}/metrics")):
        if family.name == ROOMS_ACTIVE:
            return sum(s.value for s in family.samples)
    return None


def check(answers: Answers, stack: LiveStack, **_: object) -> Check:
    result = Check(1, TITLE, answers, stack)
    end = now()
    span = (end - WINDOW, end, STEP)
    rooms_query = result.answer("active_rooms_query", f"a PromQL query for the number of active rooms "
                                                      f"(the signaling service's {ROOMS_ACTIVE} gauge)")
    p95_query = result.answer("ice_p95_query", f"a PromQL query for the p95 ICE negotiation time "
                                               f"(histogram_quantile over {ICE_NEGOTIATION}_bucket)")
    try:
        at_source = source_rooms(stack)
    except StackNotUp as exc:
        raise StackNotUp(f"signaling's /metrics does not answer ({exc}): `lab status`, else `lab up`") from exc

    true_rooms = matrix(stack.prometheus, TRUE_ROOMS, *span)
    rooms = _points(true_rooms) if true_rooms else {}
    if not rooms or max(rooms.values()) == 0:
        result.lack(f"no room was active in the last {WINDOW / 60:.0f} minutes, so any query reads 0: {DEMO}")
    elif rooms_query:
        mine = result.trainee_query("active_rooms_query", rooms_query, span=span)
        if mine is not None:
            _compare_rooms(result, rooms, mine, at_source)

    true_p95 = matrix(stack.prometheus, TRUE_P95, *span)
    p95 = {t: v for t, v in (_points(true_p95) if true_p95 else {}).items() if finite(v)}
    if not p95:
        result.lack(f"no ICE negotiation reached signaling in the last {WINDOW / 60:.0f} minutes "
                    f"({ICE_NEGOTIATION}_bucket has no rate; the first negotiations after signaling starts only create "
                    f"the series, rate() sees the ones after): {DEMO}")
    elif p95_query:
        if "histogram_quantile" not in p95_query or f"{ICE_NEGOTIATION}_bucket" not in p95_query:
            result.lack(f"lab1.ice_p95_query must estimate the quantile from the histogram: "
                        f"histogram_quantile(0.95, sum by (le) (rate({ICE_NEGOTIATION}_bucket[5m]))); "
                        f"yours is {p95_query!r}")
        mine = result.trainee_query("ice_p95_query", p95_query, span=span)
        if mine is not None:
            _compare_p95(result, p95, mine)
    return result


def _compare_rooms(result: Check, truth: dict[float, float], mine: list[dict], at_source: float | None) -> None:
    if len(mine) != 1:
        result.lack(f"lab1.active_rooms_query returns {len(mine)} series; active rooms is one number: "
                    f"sum(...) over the signaling service's gauge")
        return
    theirs = _points(mine)
    wrong = [(t, v, theirs.get(t)) for t, v in truth.items() if theirs.get(t) != v]
    if wrong:
        t, expected, got = wrong[0]
        result.lack(f"lab1.active_rooms_query disagrees with {ROOMS_ACTIVE} at {len(wrong)} of {len(truth)} steps "
                    f"(e.g. {got} where signaling had {expected:g} rooms): count rooms with the signaling "
                    f"service's {ROOMS_ACTIVE} gauge, not participants or SFU rooms")
        return
    source = f"; signaling's /metrics says {at_source:g} now" if at_source is not None else ""
    result.good(f"active rooms: your query follows {ROOMS_ACTIVE} at every step of the last "
                f"{len(truth) * STEP / 60:.0f} minutes (peak {max(truth.values()):g}{source})")


def _compare_p95(result: Check, truth: dict[float, float], mine: list[dict]) -> None:
    if len(mine) != 1:
        result.lack(f"lab1.ice_p95_query returns {len(mine)} series; aggregate the buckets first: "
                    "sum by (le) (rate(..._bucket[5m])) inside histogram_quantile")
        return
    theirs = {t: v for t, v in _points(mine).items() if finite(v)}
    compared = [(t, v, theirs[t]) for t, v in truth.items() if t in theirs]
    off = [(t, v, m) for t, v, m in compared if abs(m - v) > TOLERANCE * v]
    if not compared:
        result.lack("lab1.ice_p95_query has no value where ICE negotiations happened: "
                    "use a rate window of at least 5m over the buckets")
    elif off:
        _, expected, got = off[0]
        result.lack(f"lab1.ice_p95_query is off at {len(off)} of {len(compared)} steps (e.g. {got:.3f} s where "
                    f"the p95 is {expected:.3f} s): take quantile 0.95 of rate(..._bucket[5m]) summed by le")
    else:
        result.good(f"p95 ICE negotiation: your query agrees with histogram_quantile over the buckets "
                    f"(latest {compared[-1][1] * 1000:.0f} ms)")
