import time

import jwt
import pytest

from signaling.tokens import TokenRejected, main, mint, verify

KEY = "k" * 32


def reason_for(token, room="r1", key=KEY):
    with pytest.raises(TokenRejected) as rejected:
        verify(key, token, room=room)
    return rejected.value.reason


def test_a_fresh_token_admits_its_user_to_its_room():
    grant = verify(KEY, mint(KEY, room="r1", user="alice"), room="r1")
    assert (grant.user, grant.room) == ("alice", "r1")


@pytest.mark.parametrize("token, reason", [
    (None, "missing"),
    ("", "missing"),
    (42, "malformed"),
    ("abc.def", "malformed"),
    (mint(KEY, room="r1", ttl_seconds=-5), "expired"),
    (mint("x" * 32, room="r1"), "bad_signature"),
    (mint(KEY, room="r2"), "wrong_room"),
    (jwt.encode({"sub": "a", "exp": time.time() + 60}, KEY, algorithm="HS256"), "malformed"),
    (jwt.encode({"sub": "a", "room": "r1", "exp": time.time() + 60}, KEY * 2, algorithm="HS512"),
     "malformed"),
])
def test_each_refusal_names_its_reason(token, reason):
    assert reason_for(token) == reason


def test_the_mint_command_needs_a_key(monkeypatch, capsys):
    monkeypatch.delenv("SIGNALING_TOKEN_KEY", raising=False)
    assert main(["--room", "r1"]) == 2
    assert "SIGNALING_TOKEN_KEY" in capsys.readouterr().err


def test_the_mint_command_prints_verifiable_tokens(monkeypatch, capsys):
    monkeypatch.setenv("SIGNALING_TOKEN_KEY", KEY)
    assert main(["--room", "r1", "--user", "bot", "--count", "3"]) == 0
    tokens = capsys.readouterr().out.split()
    assert [verify(KEY, t, room="r1").user for t in tokens] == ["bot-0", "bot-1", "bot-2"]
