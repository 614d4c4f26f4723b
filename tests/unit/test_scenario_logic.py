"""Pure parts of the scenarios: the incident's sizing and loss model, the auth storm's tokens."""

from __future__ import annotations

import pytest

from loadtest.scenarios.incident import FULL_LOSS_AT_RATIO, LOSS_FROM_RATIO, MAX_LOSS, LossModel, Plan, node_cpus_for
from loadtest.scenarios.others import bad_tokens
from signaling.tokens import TokenRejected, verify

from support import TOKEN_KEY


class FakeRun:
    """Only what LossModel reads from a Run."""

    class endpoints:  # noqa: N801 - mimics the attribute
        exporters = {"sfu-node-01": "http://unused"}


@pytest.mark.parametrize(("ratio", "loss"), [(0.0, 0.0), (LOSS_FROM_RATIO, 0.0),
                                             ((LOSS_FROM_RATIO + FULL_LOSS_AT_RATIO) / 2, MAX_LOSS / 2),
                                             (FULL_LOSS_AT_RATIO, MAX_LOSS), (1.0, MAX_LOSS),
                                             (1.4, MAX_LOSS)])
def test_loss_follows_the_nodes_saturation_from_the_cpu_alerts_threshold_to_where_a_throttled_node_reads(ratio, loss):
    model = LossModel(FakeRun())  # type: ignore[arg-type]
    model.ratio["sfu-node-01"] = ratio
    assert model.fraction("sfu-node-01") == pytest.approx(loss)


def test_the_story_keeps_its_shape_at_every_size():
    for size in (20, 60, 200, 500, 1000):
        plan = Plan.for_size(size)
        assert plan.publishers + plan.media_subscribers + plan.lurkers == max(size, plan.publishers
                                                                              + plan.media_subscribers)
        assert 0 < node_cpus_for(size) < 1


def test_the_default_incident_is_the_500_person_room_and_ci_runs_a_smaller_budget():
    plan = Plan.for_size(500)
    assert plan.publishers + plan.media_subscribers + plan.lurkers == 500 and plan.lurkers > 450
    assert node_cpus_for(60) < node_cpus_for(500)


def test_every_auth_storm_token_is_refused_for_a_different_reason():
    reasons = set()
    for token in bad_tokens(TOKEN_KEY, "storm"):
        with pytest.raises(TokenRejected) as refused:
            verify(TOKEN_KEY, token, room="storm")
        reasons.add(refused.value.reason)
    assert len(reasons) == 4, reasons
