"""`make demo` runs `lab demo`: the stack comes up, media flows, metrics print, and nothing is left behind."""

import subprocess
import sys

import pytest

from lab import netns

pytestmark = pytest.mark.janus


def test_lab_demo_sends_media_through_the_stack_and_cleans_up():
    before = set(netns.existing())
    result = subprocess.run([sys.executable, "-m", "lab.cli", "demo", "--seconds", "2", "--subscribers", "1"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "subscriber 0 ICE: connected" in result.stdout
    frames = result.stdout.split("video frames received per subscriber: [", 1)[1].split("]", 1)[0]
    assert int(frames) > 0
    assert "signaling_rooms_active           1" in result.stdout
    assert set(netns.existing()) == before, "the demo's namespace was removed"
