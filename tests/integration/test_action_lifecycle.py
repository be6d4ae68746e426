"""update_action's service against moto: children, the phase guard as DynamoDB enforces it,
attempts, events, aborts, large specs, and idempotent replays of every RPC."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta

import pytest
from flyteidl2.common.identifier_pb2 import RunIdentifier
from flyteidl2.common.phase_pb2 import ActionPhase
from flyteidl2.core.types_pb2 import LiteralType, SimpleType
from flyteidl2.workflow import internal_run_service_pb2 as internal
from flyteidl2.workflow import run_definition_pb2 as wf
from flyteidl2.workflow import run_service_pb2 as runs

from runplane.connect.errors import Code, ConnectError
from runplane.connect.transformers import enum_value
from runplane.flyte import phases
from runplane.flyte.identifiers import ActionKey
from runplane.table.records import item_key
from tests.builders import DOMAIN, PROJECT, action_id, child_task_action, task_spec
from tests.conftest import unique_name
from tests.refusals import REFUSED, as_refusal
from tests.unit.test_phase_guard import SAME_ATTEMPT

pytestmark = pytest.mark.integration


def key(run: str, name: str = "a0") -> ActionKey:
    return ActionKey(project=PROJECT, domain=DOMAIN, run=run, name=name)


def force_phase(store, action: ActionKey, phase: int, attempts: int = 1) -> None:
    """Test set-up only: put an action in a phase without going through the guard."""
    store.client.update_item(
        TableName=store.table_name,
        Key=item_key(action),
        UpdateExpression="SET phase = :p, attempts = :a",
        ExpressionAttributeValues={":p": {"N": str(phase)}, ":a": {"N": str(attempts)}},
    )


def status_request(
    run: str, name: str, phase: int, *, attempts: int = 0, **times
) -> internal.UpdateActionStatusRequest:
    status = wf.ActionStatus(phase=enum_value(ActionPhase, phase), attempts=attempts)  # any number: 42 too
    for field, value in times.items():
        getattr(status, field).FromDatetime(value)
    return internal.UpdateActionStatusRequest(action_id=action_id(run, name), status=status)


def rejected(call, *args) -> ConnectError:
    with pytest.raises(REFUSED) as info:
        call(*args)
    return as_refusal(info.value)


# --- children ----------------------------------------------------------------------------------


def test_enqueue_creates_a_queued_child_under_a_live_parent(lifecycle, store, new_run):
    run = new_run()
    lifecycle.enqueue(child_task_action(run, "c1"))
    child = store.get_action(key(run, "c1"))
    assert child.parent == "a0" and child.phase == phases.QUEUED and child.origin == "enqueue"
    assert child.action_type == wf.ACTION_TYPE_TASK and child.task_name == "child.task"
    spec = wf.ActionSpec.FromString(child.action_spec)
    assert spec.parent_action_name == "a0" and spec.task.spec.task_template.type == "python-task"
    assert child.inputs_uri.endswith("/c1/inputs/inputs.pb")


def test_enqueue_is_idempotent_and_a_different_request_is_already_exists(lifecycle, store, new_run):
    run = new_run()
    request = child_task_action(run, "c1")
    lifecycle.enqueue(request)
    lifecycle.enqueue(request)
    assert store.get_action(key(run, "c1")).version == 1
    other = child_task_action(run, "c1", spec=task_spec(name="other.task"))
    assert rejected(lifecycle.enqueue, other).code is Code.ALREADY_EXISTS


def test_children_need_a_parent_that_exists_in_the_same_run(lifecycle, store, new_run):
    run, other_run = new_run(), new_run()
    lifecycle.enqueue(child_task_action(other_run, "c1"))
    error = rejected(lifecycle.enqueue, child_task_action(run, "c2", parent="c1"))  # c1 lives in another run
    assert error.code is Code.NOT_FOUND
    assert store.get_action(key(run, "c2")) is None


@pytest.mark.parametrize("parent_phase", [phases.SUCCEEDED, phases.FAILED, phases.ABORTED])
def test_children_cannot_start_under_an_ended_parent(lifecycle, store, new_run, parent_phase):
    run = new_run()
    force_phase(store, key(run), parent_phase)
    error = rejected(lifecycle.enqueue, child_task_action(run, "c1"))
    assert error.code is Code.FAILED_PRECONDITION and phases.phase_name(parent_phase) in error.message
    assert store.get_action(key(run, "c1")) is None


def test_child_under_an_aborted_run(lifecycle, store, new_run):
    run = new_run()
    lifecycle.abort_run(runs.AbortRunRequest(run_id=RunIdentifier(project=PROJECT, domain=DOMAIN, name=run)))
    assert rejected(lifecycle.enqueue, child_task_action(run, "c1")).code is Code.FAILED_PRECONDITION


@pytest.mark.parametrize("name", ["a0", "Upper", "x" * 31, "bad_name", "-x"])
def test_child_names_are_validated_like_run_names(lifecycle, new_run, name):
    run = new_run()
    assert rejected(lifecycle.enqueue, child_task_action(run, name)).code is Code.INVALID_ARGUMENT


def test_a_child_named_like_its_run_is_refused_quirk_q10(lifecycle, new_run):
    run = new_run()
    assert rejected(lifecycle.enqueue, child_task_action(run, run)).code is Code.INVALID_ARGUMENT


def test_trace_is_recorded_succeeded_with_its_own_times(lifecycle, store, new_run):
    run = new_run()
    request = child_task_action(run, "t1")
    start = datetime(2026, 1, 1, 10, tzinfo=UTC)
    trace = wf.TraceAction(name="my_trace")
    trace.start_time.FromDatetime(start)
    trace.end_time.FromDatetime(start + timedelta(seconds=3))
    request.action.trace.CopyFrom(trace)
    lifecycle.enqueue(request)
    record = store.get_action(key(run, "t1"))
    assert record.phase == phases.SUCCEEDED and record.action_type == wf.ACTION_TYPE_TRACE
    assert record.started_at == start and record.duration_ms == 3000
    assert not record.needs_taskaction


def test_condition_needs_a_signallable_type(lifecycle, store, new_run):
    run = new_run()
    request = child_task_action(run, "cond")
    request.action.condition.CopyFrom(wf.ConditionAction(name="approve", type=LiteralType(simple=SimpleType.STRUCT)))
    assert rejected(lifecycle.enqueue, request).code is Code.INVALID_ARGUMENT
    request.action.condition.type.simple = SimpleType.BOOLEAN
    lifecycle.enqueue(request)
    assert store.get_action(key(run, "cond")).action_type == wf.ACTION_TYPE_CONDITION


def test_a_one_megabyte_task_template_round_trips_through_the_bucket(lifecycle, store, new_run):
    run = new_run()
    spec = task_spec(name="big.task")
    spec.task_template.container.args.append("x" * (1024 * 1024))
    lifecycle.enqueue(child_task_action(run, "big", spec=spec))

    raw = store.client.get_item(TableName=store.table_name, Key=item_key(key(run, "big")))["Item"]
    assert "action_spec" not in raw and raw["action_spec_uri"]["S"].startswith("s3://")
    record = store.get_action(key(run, "big"))
    assert wf.ActionSpec.FromString(record.action_spec).task.spec == spec


# --- RecordAction ------------------------------------------------------------------------------


def record_request(run: str, name: str, parent: str = "a0") -> internal.RecordActionRequest:
    enqueue = child_task_action(run, name, parent=parent).action
    return internal.RecordActionRequest(
        action_id=enqueue.action_id, parent=parent, input_uri=enqueue.input_uri, task=enqueue.task
    )


def test_record_action_creates_once_and_promotes_the_parent_without_touching_attempts(lifecycle, store, new_run):
    run = new_run()
    force_phase(store, key(run), phases.QUEUED, attempts=3)
    response = lifecycle.record_action(record_request(run, "c1"))
    assert response.status.code == 0
    assert store.get_action(key(run, "c1")).origin == "record"
    parent = store.get_action(key(run))
    assert parent.phase == phases.RUNNING and parent.attempts == 3  # Flyte's quirk Q8 wrote 0

    again = lifecycle.record_action(record_request(run, "c1"))
    assert again.status.code == 0 and store.get_action(key(run, "c1")).version == 1


def test_record_action_of_the_root_is_a_no_op(lifecycle, store, new_run):
    run = new_run()
    before = store.get_action(key(run))
    request = record_request(run, "a0", parent="")
    assert lifecycle.record_action(request).status.code == 0
    assert store.get_action(key(run)) == before


# --- status ------------------------------------------------------------------------------------


@pytest.mark.parametrize("current, new, allowed", SAME_ATTEMPT)
def test_the_guard_as_dynamodb_enforces_it(lifecycle, store, new_run, current, new, allowed):
    run = new_run()
    force_phase(store, key(run), current)
    response = lifecycle.update_action_status(status_request(run, "a0", new, attempts=1))
    assert response.status.code == 0  # a refused transition is a silent OK
    assert store.get_action(key(run)).phase == (new if allowed else current)


def test_retry_from_failed_needs_a_new_attempt(lifecycle, store, new_run):
    run = new_run()
    lifecycle.update_action_status(status_request(run, "a0", phases.FAILED, attempts=1))
    lifecycle.update_action_status(status_request(run, "a0", phases.RUNNING, attempts=1))  # stale: refused
    assert store.get_action(key(run)).phase == phases.FAILED
    lifecycle.update_action_status(status_request(run, "a0", phases.QUEUED, attempts=2))
    record = store.get_action(key(run))
    assert record.phase == phases.QUEUED and record.attempts == 2
    lifecycle.update_action_status(status_request(run, "a0", phases.RUNNING, attempts=1))  # older attempt
    assert store.get_action(key(run)).phase == phases.QUEUED


def test_ended_at_is_written_once_and_duration_follows(lifecycle, store, new_run):
    run = new_run()
    created = store.get_action(key(run)).created_at
    first_end = created + timedelta(seconds=5)
    lifecycle.update_action_status(status_request(run, "a0", phases.SUCCEEDED, attempts=1, end_time=first_end))
    lifecycle.update_action_status(
        status_request(run, "a0", phases.SUCCEEDED, attempts=1, end_time=first_end + timedelta(hours=1))
    )
    record = store.get_action(key(run))
    assert record.ended_at == first_end and record.duration_ms == 5000


def test_a_reported_start_time_corrects_the_duration(lifecycle, store, new_run):
    run = new_run()
    created = store.get_action(key(run)).created_at
    lifecycle.update_action_status(
        status_request(run, "a0", phases.RUNNING, attempts=1, start_time=created - timedelta(seconds=120))
    )
    lifecycle.update_action_status(status_request(run, "a0", phases.SUCCEEDED, attempts=1, end_time=created))
    assert store.get_action(key(run)).duration_ms == 120_000


def test_a_terminal_update_without_an_end_time_ends_now(lifecycle, store, new_run):
    run = new_run()
    lifecycle.update_action_status(status_request(run, "a0", phases.FAILED, attempts=1))
    record = store.get_action(key(run))
    assert record.ended_at is not None and record.ended_at >= record.created_at


def test_concurrent_updates_never_regress_and_the_newest_wins(lifecycle, store, new_run):
    run = new_run()
    sequence = [phases.QUEUED, phases.INITIALIZING, phases.RUNNING, phases.SUCCEEDED]
    requests = [status_request(run, "a0", phase, attempts=1) for phase in sequence for _ in range(6)]
    random.Random(7).shuffle(requests)
    seen: list[int] = []
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            seen.append(store.get_action(key(run)).phase)

    watcher = threading.Thread(target=watch)
    watcher.start()
    threads = [threading.Thread(target=lifecycle.update_action_status, args=(r,)) for r in requests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stop.set()
    watcher.join()

    assert store.get_action(key(run)).phase == phases.SUCCEEDED
    assert seen == sorted(seen), "an observer saw the phase move backwards"


def test_update_of_a_missing_action_is_reported_in_band(lifecycle, new_run):
    response = lifecycle.update_action_status(status_request(unique_name(), "a0", phases.RUNNING, attempts=1))
    assert response.status.code == Code.NOT_FOUND.rpc_number


@pytest.mark.parametrize("phase", [0, 42])
def test_phase_out_of_range_is_invalid_argument(lifecycle, new_run, store, phase):
    run = new_run()
    assert rejected(lifecycle.update_action_status, status_request(run, "a0", phase)).code is Code.INVALID_ARGUMENT
    assert store.get_action(key(run)).version == 1


def test_actions_service_update_needs_an_attempt(lifecycle, store, new_run):
    from flyteidl2.actions import actions_service_pb2 as actions

    run = new_run()
    request = actions.UpdateRequest(
        action_id=action_id(run, "a0"), attempt=0, status=wf.ActionStatus(phase=phases.RUNNING)
    )
    assert rejected(lifecycle.update, request).code is Code.INVALID_ARGUMENT
    request.attempt = 1
    lifecycle.update(request)
    assert store.get_action(key(run)).phase == phases.RUNNING
    request.action_id.name = "nope"
    assert rejected(lifecycle.update, request).code is Code.NOT_FOUND


# --- events ------------------------------------------------------------------------------------


def event(
    run: str, name: str, *, attempt: int, phase: ActionPhase, version: int = 0, message: str = ""
) -> wf.ActionEvent:
    item = wf.ActionEvent(id=action_id(run, name), attempt=attempt, phase=phase, version=version)
    item.updated_time.GetCurrentTime()
    if message:
        item.error_info.CopyFrom(wf.ErrorInfo(message=message, kind=wf.ErrorInfo.KIND_USER))
    return item


def test_events_are_stored_per_attempt_and_the_first_write_wins(lifecycle, store, new_run):
    run = new_run()
    events = [
        event(run, "a0", attempt=1, phase=phases.RUNNING),
        event(run, "a0", attempt=1, phase=phases.FAILED, message="oom"),
    ]
    assert lifecycle.record_action_events(internal.RecordActionEventsRequest(events=events)).status.code == 0
    replay = [
        event(run, "a0", attempt=1, phase=phases.FAILED, message="different"),
        event(run, "a0", attempt=2, phase=phases.QUEUED),
    ]
    lifecycle.record_action_events(internal.RecordActionEventsRequest(events=replay))

    stored = store.list_events(key(run))
    assert [(e.attempt, e.phase) for e in stored] == [(1, phases.RUNNING), (1, phases.FAILED), (2, phases.QUEUED)]
    assert wf.ActionEvent.FromString(stored[1].info).error_info.message == "oom"
    assert stored[1].error_kind == "KIND_USER"
    assert store.get_action(key(run)).phase == phases.QUEUED  # events never move the phase


def test_events_with_attempt_zero_are_invalid_and_nothing_is_written(lifecycle, store, new_run):
    run = new_run()
    events = [event(run, "a0", attempt=1, phase=phases.RUNNING), event(run, "a0", attempt=0, phase=phases.RUNNING)]
    assert (
        rejected(lifecycle.record_action_events, internal.RecordActionEventsRequest(events=events)).code
        is Code.INVALID_ARGUMENT
    )
    assert store.list_events(key(run)) == []


# --- aborts ------------------------------------------------------------------------------------


def test_abort_run_is_db_first_with_the_reason(lifecycle, store, new_run):
    run = new_run()
    lifecycle.abort_run(runs.AbortRunRequest(run_id=RunIdentifier(project=PROJECT, domain=DOMAIN, name=run)))
    record = store.get_action(key(run))
    assert record.phase == phases.ABORTED and record.abort_reason == "User requested abort"
    assert record.abort_requested_at is not None and record.ended_at is not None


def test_abort_of_an_ended_action_keeps_its_phase_unlike_q6(lifecycle, store, new_run):
    run = new_run()
    lifecycle.update_action_status(status_request(run, "a0", phases.SUCCEEDED, attempts=1))
    lifecycle.abort_action(runs.AbortActionRequest(action_id=action_id(run, "a0"), reason="late"))
    record = store.get_action(key(run))
    assert record.phase == phases.SUCCEEDED and record.abort_requested_at is None


def test_abort_of_a_missing_run_is_not_found(lifecycle):
    request = runs.AbortRunRequest(run_id=RunIdentifier(project=PROJECT, domain=DOMAIN, name=unique_name()))
    assert rejected(lifecycle.abort_run, request).code is Code.NOT_FOUND


def test_abort_action_targets_one_action_and_replays_are_harmless(lifecycle, store, new_run):
    from flyteidl2.actions import actions_service_pb2 as actions

    run = new_run()
    lifecycle.enqueue(child_task_action(run, "c1"))
    request = actions.AbortRequest(action_id=action_id(run, "c1"), reason="stop c1")
    lifecycle.abort(request)
    first = store.get_action(key(run, "c1"))
    lifecycle.abort(request)
    assert store.get_action(key(run, "c1")) == first and first.abort_reason == "stop c1"
    assert store.get_action(key(run)).phase == phases.QUEUED
