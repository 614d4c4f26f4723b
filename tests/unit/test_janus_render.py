import pytest

from janus_node.render import ConfigError, render


def test_renders_every_template_with_the_node_values(tmp_path):
    values = render(tmp_path, {"JANUS_ADMIN_SECRET": "s3cret", "JANUS_INTERFACE": "198.18.0.2",
                               "JANUS_WS_PORT": "8190"})
    core = (tmp_path / "janus.jcfg").read_text()
    assert 'admin_secret = "s3cret"' in core
    assert 'ice_enforce_list = "198.18.0.2"' in core
    assert f'configs_folder = "{tmp_path}"' in core
    assert "ws_port = 8190" in (tmp_path / "janus.transport.websockets.jcfg").read_text()
    assert "${" not in "".join(p.read_text() for p in tmp_path.iterdir())
    assert values["JANUS_EVENT_LOOPS"] == "2"


def test_the_admin_secret_has_no_default(tmp_path):
    with pytest.raises(ConfigError, match="JANUS_ADMIN_SECRET is required"):
        render(tmp_path, {"JANUS_INTERFACE": "198.18.0.2"})


def test_all_malformed_values_are_reported_together(tmp_path):
    with pytest.raises(ConfigError) as error:
        render(tmp_path, {"JANUS_ADMIN_SECRET": 'a"b', "JANUS_INTERFACE": "x", "JANUS_WS_PORT": "port",
                          "JANUS_EVENTS_ENABLED": "yes"})
    message = str(error.value)
    assert "JANUS_WS_PORT" in message and "JANUS_EVENTS_ENABLED" in message and "quotes" in message
