"""WatchActions' view of a run: descendant phase counts and visibility under filters."""

import pytest
from flyteidl2.common import list_pb2

from functions.read_runs.action_tree import ActionFilter, enriched_actions
from runplane.flyte import phases
from runplane.flyte.identifiers import ActionKey
from runplane.table.records import ActionRecord
from tests.refusals import REFUSED

F = list_pb2.Filter


def action(name, parent=None, phase=phases.QUEUED, function=""):
    return ActionRecord(
        key=ActionKey(project="p", domain="d", run="r", name=name), parent=parent, phase=phase, function_name=function
    )


TREE = [
    action("a0", phase=phases.RUNNING, function="wf.main"),
    action("b1", "a0", phases.SUCCEEDED, "wf.train"),
    action("b2", "a0", phases.RUNNING, "wf.evaluate"),
    action("c1", "b2", phases.FAILED, "wf.train_shard"),
]


def test_counts_cover_all_descendants():
    enriched = enriched_actions(TREE, ActionFilter([]))
    assert dict(enriched["a0"].children_phase_counts) == {phases.SUCCEEDED: 1, phases.RUNNING: 1, phases.FAILED: 1}
    assert dict(enriched["b2"].children_phase_counts) == {phases.FAILED: 1}
    assert all(e.meets_filter for e in enriched.values())


def test_an_ancestor_of_a_match_stays_visible():
    enriched = enriched_actions(
        TREE, ActionFilter([F(field="NAME", function=F.CONTAINS_CASE_INSENSITIVE, values=["SHARD"])])
    )
    assert {n for n, e in enriched.items() if e.meets_filter} == {"a0", "b2", "c1"}
    enriched = enriched_actions(
        TREE, ActionFilter([F(field="PHASE", function=F.VALUE_IN, values=[str(phases.SUCCEEDED)])])
    )
    assert {n for n, e in enriched.items() if e.meets_filter} == {"a0", "b1"}


@pytest.mark.parametrize(
    "bad", [F(field="TASK", function=F.EQUAL, values=["x"]), F(field="PHASE", function=F.VALUE_IN, values=["RUNNING"])]
)
def test_unsupported_filters_are_refused(bad):
    with pytest.raises(REFUSED):
        ActionFilter([bad])
