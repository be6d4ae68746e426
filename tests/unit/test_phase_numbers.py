"""runplane.flyte.phases writes flyteidl2's ActionPhase numbers out (its import would load protobuf in the
functions that need nothing else of it): they must be the enum's, name for name."""

from flyteidl2.common.phase_pb2 import ActionPhase

from runplane.flyte import phases


def test_every_phase_is_flyteidls_number_and_name():
    assert frozenset(ActionPhase.values()) == phases.ALL_PHASES
    for name, number in ActionPhase.items():
        assert phases.phase_name(number) == name
        assert getattr(phases, name.removeprefix("ACTION_PHASE_")) == number


def test_an_unknown_number_still_has_a_name():
    assert phases.phase_name(99) == "ACTION_PHASE_99"
