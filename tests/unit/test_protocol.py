import json

import pytest

from signaling.protocol import ProtocolError, metric_type, parse


def reason_for(frame):
    with pytest.raises(ProtocolError) as refused:
        parse(frame if isinstance(frame, (str, bytes)) else json.dumps(frame))
    return refused.value.reason


def test_a_join_gets_the_publisher_role_by_default():
    assert parse('{"type": "join", "room": "r1", "token": "t"}')["role"] == "publisher"


@pytest.mark.parametrize("frame, reason", [
    (b'{"type": "ping"}', "binary_frame"),
    ("{", "invalid_json"),
    ('{"type": "ping", "n": ' + "9" * 5000 + "}", "invalid_json"),
    ("[" * 100000, "invalid_json"),
    ('"ping"', "not_object"),
    ({"type": "nope"}, "unknown_type"),
    ({"type": {"a": 1}}, "unknown_type"),
    ({"room": "r"}, "unknown_type"),
    ({"type": "join", "token": "t"}, "missing_field"),
    ({"type": "join", "room": "bad room!", "token": "t"}, "invalid_field"),
    ({"type": "join", "room": "r", "display": "x" * 65}, "invalid_field"),
    ({"type": "subscribe", "feed": "12"}, "invalid_field"),
    ({"type": "subscribe", "feed": True}, "invalid_field"),
    ({"type": "candidate", "candidate": "a"}, "invalid_field"),
    ({"type": "ice_state", "state": "checking"}, "invalid_field"),
    ({"type": "ping", "id": [1]}, "invalid_field"),
])
def test_bad_frames_are_refused_with_a_reason(frame, reason):
    assert reason_for(frame) == reason


def test_a_trickle_end_of_candidates_is_accepted():
    assert parse('{"type": "candidate", "candidate": null}')["candidate"] is None


def test_field_errors_keep_the_message_type_for_the_metric():
    with pytest.raises(ProtocolError) as refused:
        parse('{"type": "subscribe"}')
    assert refused.value.msg_type == "subscribe"


def test_metric_type_maps_anything_unknown_to_unknown():
    assert metric_type("join") == "join"
    assert metric_type("room-123") == "unknown"
    assert metric_type(None) == "unknown"
