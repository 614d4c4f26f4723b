"""The project's label-cardinality rule for the signaling service: every label from a bounded set.

``allowed_label_values`` lists, for each label the signaling service may emit, the only values it
may take (protocol message types, fixed reason lists, the configured nodes and region, ...).
``cardinality_violations`` reads an exposition and names each label outside that list or any value
outside its set: a ``room_id`` label fails it. The 500-participant test (tests/integration/
test_mega_room.py) and lab 2's check both apply this rule.
"""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from signaling.config import POLICIES
from signaling.metrics import HTTP_ENDPOINTS, ICE_STATUSES, JANUS_REQUESTS
from signaling.protocol import KNOWN_TYPES, PROTOCOL_ERROR_REASONS
from signaling.tokens import FAILURE_REASONS


def label_values(text: str) -> dict[str, set[str]]:
    """Every label name in an exposition (``le`` excluded) with the set of values it takes."""
    seen: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            for name, value in s.labels.items():
                if name != "le":
                    seen.setdefault(name, set()).add(value)
    return seen


def allowed_label_values(nodes: list[str], region: str) -> dict[str, set[str]]:
    """The bounded set each label of the signaling service may take."""
    return {
        "region": {region},
        "msg_type": set(KNOWN_TYPES) | {"unknown"},
        "direction": {"in", "out"},
        "reason": set(FAILURE_REASONS) | set(PROTOCOL_ERROR_REASONS),
        "status": set(ICE_STATUSES),
        "method": {"GET", "PUT", "POST", "DELETE", "other"},
        "endpoint": set(HTTP_ENDPOINTS),
        "node": set(nodes),
        "policy": set(POLICIES),
        "request": set(JANUS_REQUESTS),
    }


def cardinality_violations(text: str, allowed: dict[str, set[str]]) -> list[str]:
    """One line per label outside ``allowed`` or with values outside its set; empty when the rule holds."""
    problems = []
    for name, values in label_values(text).items():
        if name not in allowed:
            problems.append(f"label {name!r} is not in the allowed list (values: {sorted(values)[:5]}...)")
        elif values - allowed[name]:
            problems.append(f"label {name!r} has values outside its set: {sorted(values - allowed[name])[:5]}")
    return problems
