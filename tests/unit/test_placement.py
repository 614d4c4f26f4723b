import pytest

from signaling.placement import NodeLoad, NoNodeAvailable, Placement

NODES = ["sfu-node-01", "sfu-node-02", "sfu-node-03", "sfu-node-04"]


def load(name, rooms=0, participants=0, handles=None, healthy=True):
    return NodeLoad(name, healthy, False, rooms, participants, handles)


def mega_room_cluster():
    """node-04 holds one 500-person room; the others hold one two-person room each."""
    return [load("sfu-node-01", 1, 2, 4), load("sfu-node-02", 1, 2, 4), load("sfu-node-03", 2, 4, 8),
            load("sfu-node-04", 1, 500, 1000)]


def test_least_rooms_counts_the_mega_room_as_one_room_and_sends_it_more():
    loads = [load(n, 2, 4) for n in NODES[:3]] + [load("sfu-node-04", 1, 500)]
    assert Placement("least_rooms", NODES).choose(loads) == ("sfu-node-04", "least_rooms")


def test_least_participants_avoids_the_mega_room_node():
    assert Placement("least_participants", NODES).choose(mega_room_cluster()) == ("sfu-node-01",
                                                                                 "least_participants")


def test_least_handles_reads_exporter_handles():
    loads = mega_room_cluster()
    loads[1] = load("sfu-node-02", 1, 2, 1)
    assert Placement("least_handles", NODES).choose(loads) == ("sfu-node-02", "least_handles")


def test_least_handles_falls_back_to_participants_when_a_reading_is_missing():
    loads = mega_room_cluster()
    loads[0] = load("sfu-node-01", 1, 2, None)
    assert Placement("least_handles", NODES).choose(loads) == ("sfu-node-01", "least_participants")


def test_round_robin_cycles_and_skips_unhealthy_and_drained_nodes():
    placement = Placement("round_robin", NODES)
    placement.drain("sfu-node-02")
    loads = [load(n, healthy=(n != "sfu-node-03")) for n in NODES]
    picks = [placement.choose(loads)[0] for _ in range(4)]
    assert picks == ["sfu-node-01", "sfu-node-04", "sfu-node-01", "sfu-node-04"]


def test_a_drained_node_gets_no_room_until_undrained():
    placement = Placement("least_rooms", NODES)
    loads = [load(n, rooms=(0 if n == "sfu-node-01" else 5)) for n in NODES]
    placement.drain("sfu-node-01")
    assert placement.choose(loads)[0] != "sfu-node-01"
    placement.drain("sfu-node-01", draining=False)
    assert placement.choose(loads)[0] == "sfu-node-01"


def test_no_healthy_node_raises():
    with pytest.raises(NoNodeAvailable):
        Placement("least_rooms", NODES).choose([load(n, healthy=False) for n in NODES])


def test_an_unknown_policy_or_node_is_refused():
    with pytest.raises(ValueError, match="least_rooms"):
        Placement("fastest", NODES)
    with pytest.raises(KeyError):
        Placement("least_rooms", NODES).drain("sfu-node-99")
