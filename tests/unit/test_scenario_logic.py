"""Pure parts of the scenarios: the incident's sizing (and that no scenario injects loss), the auth storm's tokens."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from loadtest.scenarios.incident import Plan, link_kbit_for, node_cpus_for
from loadtest.scenarios.others import bad_tokens
from signaling.tokens import TokenRejected, verify

from support import TOKEN_KEY

SCENARIOS = Path(__file__).resolve().parents[2] / "loadtest" / "scenarios"


def test_no_scenario_sets_a_loss_fraction_from_a_metric_or_at_all():
    """The incident's loss is what the hot node's link drops: no scenario injects loss (the bots' loss
    option stays for labs that ask for one), let alone a fraction computed from what an alert reads."""
    found = subprocess.run(["grep", "-rnE", r"PacketLoss|loss=|\.fraction|drop_incoming_rtp|drop_outgoing_rtp",
                            str(SCENARIOS)], capture_output=True, text=True)
    assert found.returncode == 1 and found.stdout == "", found.stdout


def test_the_story_keeps_its_shape_at_every_size():
    for size in (20, 60, 200, 500, 1000):
        plan = Plan.for_size(size)
        assert plan.publishers + plan.media_subscribers + plan.lurkers == max(size, plan.publishers
                                                                              + plan.media_subscribers)
        assert 0 < node_cpus_for(size) < 1 and link_kbit_for(size) > 0


def test_the_default_incident_is_the_500_person_room_and_ci_runs_a_smaller_budget():
    plan = Plan.for_size(500)
    assert plan.publishers + plan.media_subscribers + plan.lurkers == 500 and plan.lurkers > 450
    assert node_cpus_for(60) < node_cpus_for(500)
    assert link_kbit_for(60) < link_kbit_for(500), "the full mega-room offers more media than the CI one"


def test_every_auth_storm_token_is_refused_for_a_different_reason():
    reasons = set()
    for token in bad_tokens(TOKEN_KEY, "storm"):
        with pytest.raises(TokenRejected) as refused:
            verify(TOKEN_KEY, token, room="storm")
        reasons.add(refused.value.reason)
    assert len(reasons) == 4, reasons


class StackWith:
    """Only what ``budget_mismatch`` reads of a ``StackControl``: each node's CPU limit and link."""

    def __init__(self, cores: float | None, kbit: int | None) -> None:
        self.cores, self.kbit = cores, kbit

    def nodes(self) -> tuple[str, ...]:
        return ("sfu-node-01", "sfu-node-02")

    def cpu_limit(self, node: str) -> float | None:
        return self.cores

    def link_kbit(self, node: str) -> int | None:
        return self.kbit

    def start_hint(self, node_cpus: float, link_kbit: int | None = None) -> str:
        return f"up --cpus {node_cpus:g} --kbit {link_kbit}"


def test_the_incident_refuses_a_stack_whose_cpu_budget_or_link_differs_and_names_the_command():
    from loadtest.scenarios import scenarios
    from loadtest.scenarios.runner import budget_mismatch

    incident = scenarios()["incident"]
    cores, kbit = node_cpus_for(60), link_kbit_for(60)
    assert budget_mismatch(incident, StackWith(cores, kbit), 60) is None  # type: ignore[arg-type]
    unshaped = budget_mismatch(incident, StackWith(cores, None), 60)  # type: ignore[arg-type]
    assert unshaped and "sfu-node-01 link unshaped" in unshaped and f"up --cpus {cores:g} --kbit {kbit}" in unshaped
    wrong = budget_mismatch(incident, StackWith(1.0, kbit + 1), 60)  # type: ignore[arg-type]
    assert wrong and "sfu-node-02 1.0 core" in wrong and f"link {kbit + 1} kbit/s" in wrong
    assert budget_mismatch(scenarios()["node-down"], StackWith(None, None), 20) is None  # type: ignore[arg-type]
