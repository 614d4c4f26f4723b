import pytest

from signaling.config import ConfigError, load

GOOD = {
    "SIGNALING_TOKEN_KEY": "k" * 32,
    "SIGNALING_ADMIN_TOKEN": "a" * 16,
    "SIGNALING_SFU_NODES": "sfu-node-01=ws://10.0.0.1:8188,sfu-node-02=ws://10.0.0.2:8188",
}


def test_a_complete_environment_loads_with_defaults():
    config = load(GOOD)
    assert list(config.sfu_nodes) == ["sfu-node-01", "sfu-node-02"]
    assert config.placement_policy == "least_participants"
    assert config.max_participants >= 500, "the default must allow the 500-person room"


def test_secrets_and_nodes_have_no_default_and_all_missing_values_are_listed():
    with pytest.raises(ConfigError) as error:
        load({})
    message = str(error.value)
    for name in ("SIGNALING_TOKEN_KEY", "SIGNALING_ADMIN_TOKEN", "SIGNALING_SFU_NODES"):
        assert name in message


@pytest.mark.parametrize("name, value, expected", [
    ("SIGNALING_PORT", "http", "SIGNALING_PORT='http'"),
    ("SIGNALING_PORT", "70000", "TCP port"),
    ("SIGNALING_TOKEN_KEY", "short", "at least 32"),
    ("SIGNALING_SFU_NODES", "sfu-node-01=http://x", "ws://"),
    ("SIGNALING_SFU_NODES", "Node A=ws://x", "lowercase"),
    ("SIGNALING_SFU_NODES", "a=ws://x,a=ws://y", "twice"),
    ("SIGNALING_PLACEMENT_POLICY", "random", "least_rooms"),
    ("SIGNALING_RATE_LIMIT", "-1", "positive"),
    ("SIGNALING_JOIN_TIMEOUT", "0", "positive"),
    ("SIGNALING_MAX_CONNECTIONS_PER_ADDRESS", "many", "SIGNALING_MAX_CONNECTIONS_PER_ADDRESS='many'"),
    ("SIGNALING_JOIN_FAILURE_LIMIT", "-3", "positive"),
    ("SIGNALING_METRICS", "maybe", "true or false"),
    ("SIGNALING_LOG_LEVEL", "LOUD", "DEBUG"),
    ("SIGNALING_SFU_EXPORTERS", "sfu-node-09=http://x/metrics", "not in SIGNALING_SFU_NODES"),
])
def test_each_bad_value_is_named_with_why(name, value, expected):
    with pytest.raises(ConfigError, match=expected):
        load({**GOOD, name: value})


def test_a_bad_secret_is_not_echoed():
    with pytest.raises(ConfigError) as error:
        load({**GOOD, "SIGNALING_ADMIN_TOKEN": "leak"})
    assert "leak" not in str(error.value)


def test_flags_win_over_the_environment():
    assert load(GOOD, {"port": "9999"}).port == 9999
