"""The order a stream batch is reconciled in: a child never before its parent, the rest at once."""

from functions.reconcile.batch import handling_order, heights, plan_waves
from functions.reconcile.reconciler import ActionChange
from runplane.flyte.identifiers import ActionKey
from runplane.table.records import ActionRecord, utcnow


def record(run: str, name: str, parent: str | None = None, event: str = "INSERT", **changes) -> dict:
    image = ActionRecord(key=ActionKey(project="p", domain="d", run=run, name=name), parent=parent, **changes).to_item()
    return {"eventName": event, "dynamodb": {"Keys": {"pk": image["pk"], "sk": image["sk"]}, "NewImage": image}}


def test_children_wait_for_their_parents_and_independent_runs_do_not():
    batch = [
        record("r1", "a0"),
        record("r2", "a0"),
        record("r1", "b1", parent="a0"),
        record("r1", "b2", parent="a0"),
        record("r1", "c1", parent="b1"),
        record("r2", "b1", parent="a0"),
        record("r3", "b1", parent="a0"),  # its parent is not in this batch: nothing to wait for
    ]
    waves, dependencies = plan_waves(batch)
    assert waves == [[0, 1, 6], [2, 3, 5], [4]]
    assert dependencies[4] == {2} and dependencies[5] == {1}


def test_records_of_one_action_stay_in_order():
    batch = [record("r1", "a0"), record("r1", "a0", event="MODIFY"), record("r1", "a0", event="MODIFY")]
    waves, _ = plan_waves(batch)
    assert waves == [[0], [1], [2]]


def test_event_items_never_wait():
    event_item = {
        "eventName": "INSERT",
        "dynamodb": {"Keys": {"pk": {"S": "p#d#r1"}, "sk": {"S": "E#a0#000001#04#0000000000"}}},
    }
    waves, _ = plan_waves([record("r1", "a0"), event_item])
    assert waves == [[0, 1]]


def test_an_abort_is_requested_only_when_the_request_appears():
    requested = utcnow()
    before = record("r1", "a0")["dynamodb"]["NewImage"]
    after = record("r1", "a0", abort_requested_at=requested)["dynamodb"]["NewImage"]
    change = lambda old, new: ActionChange.from_stream_record(  # noqa: E731
        {"eventName": "MODIFY", "dynamodb": {"Keys": {"sk": {"S": "A#a0"}}, "OldImage": old, "NewImage": new}}
    )
    assert change(before, after).requests_abort
    assert not change(after, after).requests_abort  # a later write to the same item
    assert not change(after, before).requests_abort  # the request cleared


def test_a_task_named_like_an_action_key_is_not_an_action():
    """A task "A" is stored with the sort key "A#<version>": reconcile must not take it for one."""
    record = {
        "eventName": "INSERT",
        "dynamodb": {
            "Keys": {"pk": {"S": "TASKS#p#d"}, "sk": {"S": "A#v1"}},
            "NewImage": {"pk": {"S": "TASKS#p#d"}, "sk": {"S": "A#v1"}, "name": {"S": "A"}},
            "SequenceNumber": "1",
        },
    }
    change = ActionChange.from_stream_record(record)
    assert change.new is None and change.old is None


def test_records_are_read_for_in_the_order_they_can_start():
    batch = [
        record("r1", "a0"),
        record("r1", "b1", parent="a0"),
        record("r1", "c1", parent="b1"),
        record("r1", "c2", parent="b1"),
        record("r2", "c1", parent="b1"),  # its parent is not in this batch: it can start at once
        record("r3", "a0"),  # a root late in the batch: read with the first
        record("r3", "b1", parent="a0"),
    ]
    assert heights(plan_waves(batch)[1]) == {0: 3, 1: 2, 2: 1, 3: 1, 4: 1, 5: 2, 6: 1}
    # wave by wave; within a wave, the longest chain waiting on a record first
    assert handling_order(batch) == [0, 5, 4, 1, 6, 2, 3]
