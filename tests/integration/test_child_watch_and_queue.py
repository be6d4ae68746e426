"""Against moto: the watches of a parent's children (ActionsService/WatchForUpdates,
StateService/Watch), QueueService (EnqueueAction, AbortQueued*) and EventsProxyService/Record,
as the flyte SDK calls them from inside a task."""

from __future__ import annotations

import json
import threading
import time

import pytest
from flyteidl2.actions import actions_service_pb2 as actions
from flyteidl2.common.identifier_pb2 import ActionIdentifier, RunIdentifier
from flyteidl2.common.phase_pb2 import ActionPhase
from flyteidl2.core.execution_pb2 import ExecutionError
from flyteidl2.task.task_definition_pb2 import TaskIdentifier
from flyteidl2.workflow import events_proxy_service_pb2 as events_proxy
from flyteidl2.workflow import internal_run_service_pb2 as internal
from flyteidl2.workflow import queue_service_pb2 as queue
from flyteidl2.workflow import run_definition_pb2 as wf
from flyteidl2.workflow import state_service_pb2 as state
from google.protobuf.wrappers_pb2 import StringValue

from functions.read_runs.service import RunReader
from functions.update_action.service import ActionLifecycleService
from runplane.connect.calls import Call
from runplane.connect.codec import HttpRequest
from runplane.connect.errors import Code, ConnectError
from runplane.connect.pages import PageTokens
from runplane.connect.router import ConnectRouter
from runplane.flyte import phases
from runplane.flyte.identifiers import ActionKey
from runplane.flyte.output_paths import action_output_path
from runplane.table.actions import ActionStore
from runplane.table.records import ACTION_STATE_ATTRIBUTES
from tests.builders import DOMAIN, PROJECT, action_id, child_task_action, task_spec
from tests.conftest import unique_name
from tests.refusals import REFUSED, as_refusal

pytestmark = pytest.mark.integration

SDK_CHILD_NAME = "5cq9izcd1cvm7e1owrgfz8s6t"  # the SDK names children with base-36 hashes


def key(run: str, name: str = "a0") -> ActionKey:
    return ActionKey(project=PROJECT, domain=DOMAIN, run=run, name=name)


def run_base(aws, run: str) -> str:
    return f"s3://{aws.bucket}/{PROJECT}/{DOMAIN}/{run}/"


def set_phase(lifecycle, run: str, name: str, phase: ActionPhase) -> None:
    lifecycle.update_action_status(
        internal.UpdateActionStatusRequest(
            action_id=action_id(run, name), status=wf.ActionStatus(phase=phase, attempts=1)
        )
    )


def trace_child(run: str, name: str, *, output_uri: str) -> actions.EnqueueRequest:
    request = child_task_action(run, name)
    request.action.ClearField("task")
    request.action.trace.CopyFrom(wf.TraceAction(name="my.trace"))
    request.action.trace.outputs.output_uri = output_uri
    return request


def sdk_enqueue_action(run: str, name: str = SDK_CHILD_NAME, *, group: str | None = None) -> queue.EnqueueActionRequest:
    """What the SDK's _bg_launch sends to QueueService: the task id from its template (org,
    project, domain, version), a cache key, a queue, the inputs file and the run base dir."""
    spec = task_spec(name="wf.child")
    spec.task_template.id.org, spec.task_template.id.project, spec.task_template.id.domain = "o", PROJECT, DOMAIN
    template_id = spec.task_template.id
    return queue.EnqueueActionRequest(
        action_id=action_id(run, name),
        parent_action_name="a0",
        input_uri=f"s3://flyte-data/{PROJECT}/{DOMAIN}/{run}/{name}/inputs.pb",
        run_output_base=f"s3://flyte-data/{PROJECT}/{DOMAIN}/{run}",
        group=group,
        task=wf.TaskAction(
            id=TaskIdentifier(
                org=template_id.org,
                project=template_id.project,
                domain=template_id.domain,
                name=template_id.name,
                version=template_id.version,
            ),
            spec=spec,
            cache_key=StringValue(value="ck-1"),
            queue="",
        ),
    )


def rejected(call, *args) -> ConnectError:
    with pytest.raises(REFUSED) as info:
        call(*args)
    return as_refusal(info.value)


def updates_of(frames) -> list[tuple[str, int] | str]:
    """A stream as (action, phase) pairs, the sentinel as "sentinel"."""
    out: list[tuple[str, int] | str] = []
    for frame in frames:
        if frame.WhichOneof("message") == "control_message":
            assert frame.control_message.sentinel
            out.append("sentinel")
        else:
            out.append((frame.action_update.action_id.name, frame.action_update.phase))
    return out


# --- what the records carry --------------------------------------------------------------------


def test_records_carry_their_run_output_base_and_traces_their_outputs(aws, lifecycle, store, run):
    assert store.get_action(key(run)).run_output_base == run_base(aws, run)
    lifecycle.enqueue(child_task_action(run, "c1"))
    assert store.get_action(key(run, "c1")).run_output_base == f"s3://flyte-data/{PROJECT}/{DOMAIN}/{run}/"
    lifecycle.enqueue(trace_child(run, "t1", output_uri="s3://flyte-data/traces/t1"))
    assert store.get_action(key(run, "t1")).output_uri == "s3://flyte-data/traces/t1"


def test_list_action_states_reads_the_actions_without_their_specs(lifecycle, store, run):
    lifecycle.enqueue(child_task_action(run, "c1"))
    lifecycle.record_action_events(
        internal.RecordActionEventsRequest(
            events=[wf.ActionEvent(id=action_id(run, "c1"), attempt=1, phase=phases.RUNNING)]
        )
    )
    states = store.list_action_states(key(run).run_key)
    assert [(s.key.name, s.parent) for s in states] == [("a0", None), ("c1", "a0")]  # events are not actions
    assert all(s.action_spec == b"" and s.run_spec == b"" and s.task_name == "" for s in states)
    full = store.get_action(key(run, "c1"))
    assert (states[1].phase, states[1].attempts, states[1].run_output_base, states[1].version) == (
        full.phase,
        full.attempts,
        full.run_output_base,
        full.version,
    )
    assert {"name", "phase", "attempts", "run_output_base", "output_uri", "error_message"} <= set(
        ACTION_STATE_ATTRIBUTES
    )


# --- WatchForUpdates / StateService.Watch ------------------------------------------------------


def test_watch_sends_the_parent_and_direct_children_then_the_sentinel(aws, reader, lifecycle, store, run):
    lifecycle.enqueue(child_task_action(run, "c1"))
    lifecycle.enqueue(child_task_action(run, "c2"))
    lifecycle.enqueue(child_task_action(run, "g1", parent="c1"))  # a grandchild: not a's business
    started = time.monotonic()
    frames = list(reader.watch_for_updates(actions.WatchForUpdatesRequest(parent_action_id=action_id(run, "a0"))))
    assert time.monotonic() - started >= 0.9  # nothing changed: the stream lasted the window
    assert updates_of(frames) == [("a0", phases.QUEUED), ("c1", phases.QUEUED), ("c2", phases.QUEUED), "sentinel"]
    root = frames[0].action_update
    assert root.action_id.run.name == run and root.output_uri == action_output_path(
        namespace="flyte",
        project=PROJECT,
        domain=DOMAIN,
        run=run,
        action="a0",
        run_output_base=run_base(aws, run),
        attempt=1,
    )
    assert frames[1].action_update.output_uri == action_output_path(
        namespace="flyte",
        project=PROJECT,
        domain=DOMAIN,
        run=run,
        action="c1",
        run_output_base=f"s3://flyte-data/{PROJECT}/{DOMAIN}/{run}/",
        attempt=1,
    )

    of_c1 = list(reader.watch_for_updates(actions.WatchForUpdatesRequest(parent_action_id=action_id(run, "c1"))))
    assert updates_of(of_c1) == [("c1", phases.QUEUED), ("g1", phases.QUEUED), "sentinel"]


def test_a_change_within_the_window_ends_the_stream_with_the_changed_actions(reader, lifecycle, run):
    lifecycle.enqueue(child_task_action(run, "c1"))
    lifecycle.enqueue(child_task_action(run, "c2"))
    timer = threading.Timer(0.3, set_phase, (lifecycle, run, "c1", phases.RUNNING))
    timer.start()
    frames = list(reader.watch_for_updates(actions.WatchForUpdatesRequest(parent_action_id=action_id(run, "a0"))))
    timer.join()
    assert updates_of(frames) == [
        ("a0", phases.QUEUED),
        ("c1", phases.QUEUED),
        ("c2", phases.QUEUED),
        "sentinel",
        ("c1", phases.RUNNING),
    ]


def test_a_new_child_within_the_window_is_sent(reader, lifecycle, run):
    timer = threading.Timer(0.3, lifecycle.enqueue, (child_task_action(run, "c9"),))
    timer.start()
    frames = list(reader.watch_state(state.WatchRequest(parent_action_id=action_id(run, "a0"))))
    timer.join()
    assert updates_of(frames) == [("a0", phases.QUEUED), "sentinel", ("c9", phases.QUEUED)]


def test_a_failed_child_carries_its_error_and_a_trace_its_outputs(reader, lifecycle, store, run):
    lifecycle.enqueue(child_task_action(run, "c1"))
    lifecycle.enqueue(trace_child(run, "t1", output_uri="s3://flyte-data/traces/t1"))
    assert store.fail_action(key(run, "c1"), message="boom", kind="KIND_USER")
    frames = list(reader.watch_state(state.WatchRequest(parent_action_id=action_id(run, "a0"))))
    updates = {f.action_update.action_id.name: f.action_update for f in frames if f.HasField("action_update")}
    assert updates["c1"].phase == phases.FAILED and updates["c1"].HasField("error")
    assert (updates["c1"].error.message, updates["c1"].error.kind) == ("boom", ExecutionError.USER)
    assert updates["t1"].phase == phases.SUCCEEDED and updates["t1"].output_uri == "s3://flyte-data/traces/t1"
    assert not updates["t1"].HasField("error") and not updates["a0"].HasField("error")


def test_a_parent_that_ended_gets_one_batch_at_once(reader, lifecycle, run):
    lifecycle.enqueue(child_task_action(run, "c1"))
    set_phase(lifecycle, run, "a0", phases.SUCCEEDED)
    no_waiting = RunReader(store=reader._store, tokens=PageTokens(secret=b"t"), sleep=lambda _: pytest.fail("slept"))
    frames = list(no_waiting.watch_for_updates(actions.WatchForUpdatesRequest(parent_action_id=action_id(run, "a0"))))
    assert updates_of(frames) == [("a0", phases.SUCCEEDED), ("c1", phases.QUEUED), "sentinel"]


def test_the_parent_ending_within_the_window_is_sent(reader, lifecycle, run):
    timer = threading.Timer(0.3, set_phase, (lifecycle, run, "a0", phases.SUCCEEDED))
    timer.start()
    frames = list(reader.watch_for_updates(actions.WatchForUpdatesRequest(parent_action_id=action_id(run, "a0"))))
    timer.join()
    assert updates_of(frames) == [("a0", phases.QUEUED), "sentinel", ("a0", phases.SUCCEEDED)]


def test_a_missing_or_malformed_parent_is_refused(reader, run):
    for request in (
        actions.WatchForUpdatesRequest(parent_action_id=action_id(run, "nope")),
        actions.WatchForUpdatesRequest(parent_action_id=action_id(unique_name(), "a0")),
    ):
        assert rejected(lambda r: list(reader.watch_for_updates(r)), request).code is Code.NOT_FOUND
    assert rejected(lambda r: list(reader.watch_state(r)), state.WatchRequest()).code is Code.INVALID_ARGUMENT
    malformed = state.WatchRequest(
        parent_action_id=ActionIdentifier(run=RunIdentifier(project=PROJECT, domain=DOMAIN, name=run))
    )
    error = rejected(lambda r: list(reader.watch_state(r)), malformed)
    assert error.code is Code.INVALID_ARGUMENT and "parent_action_id.name" in error.message


# --- QueueService ------------------------------------------------------------------------------


def test_enqueue_action_creates_the_child_the_sdk_asks_for(lifecycle, store, run):
    request = sdk_enqueue_action(run)
    lifecycle.enqueue_action(request)
    child = store.get_action(key(run, SDK_CHILD_NAME))
    assert child.parent == "a0" and child.phase == phases.QUEUED and child.origin == "enqueue"
    assert (child.task_project, child.task_domain, child.task_name, child.task_version) == (
        PROJECT,
        DOMAIN,
        "wf.child",
        "v1",
    )
    assert child.inputs_uri == f"s3://flyte-data/{PROJECT}/{DOMAIN}/{run}/{SDK_CHILD_NAME}/inputs.pb"
    assert child.run_output_base == f"s3://flyte-data/{PROJECT}/{DOMAIN}/{run}" and child.group == ""
    spec = wf.ActionSpec.FromString(child.action_spec)
    assert spec.task.cache_key.value == "ck-1" and spec.parent_action_name == "a0"

    lifecycle.enqueue_action(request)  # the same again: OK
    same_through_actions = actions.EnqueueRequest(
        action=actions.Action(
            action_id=request.action_id, parent_action_name="a0", input_uri=request.input_uri,
            run_output_base=request.run_output_base, task=request.task,
        )
    )  # fmt: skip
    lifecycle.enqueue(same_through_actions)  # the same child through ActionsService: OK too
    different = sdk_enqueue_action(run, group="g")
    assert rejected(lifecycle.enqueue_action, different).code is Code.ALREADY_EXISTS


def test_enqueue_action_refusals_match_enqueue(lifecycle, run):
    orphan = sdk_enqueue_action(run, "c1")
    orphan.parent_action_name = "nope"
    assert rejected(lifecycle.enqueue_action, orphan).code is Code.NOT_FOUND
    no_parent = sdk_enqueue_action(run, "c2")
    no_parent.ClearField("parent_action_name")
    assert rejected(lifecycle.enqueue_action, no_parent).code is Code.INVALID_ARGUMENT
    bad_name = sdk_enqueue_action(run, "Bad_Name")
    error = rejected(lifecycle.enqueue_action, bad_name)
    assert error.code is Code.INVALID_ARGUMENT and error.message.startswith("action_id.name")
    no_spec = sdk_enqueue_action(run, "c3")
    no_spec.ClearField("task")
    assert rejected(lifecycle.enqueue_action, no_spec).code is Code.INVALID_ARGUMENT
    set_phase(lifecycle, run, "a0", phases.SUCCEEDED)
    assert rejected(lifecycle.enqueue_action, sdk_enqueue_action(run, "c4")).code is Code.FAILED_PRECONDITION


def test_abort_queued_action_and_run(lifecycle, store, run):
    lifecycle.enqueue_action(sdk_enqueue_action(run, "c1"))
    lifecycle.abort_queued_action(queue.AbortQueuedActionRequest(action_id=action_id(run, "c1"), reason="not needed"))
    child = store.get_action(key(run, "c1"))
    assert child.phase == phases.ABORTED and child.abort_reason == "not needed" and child.abort_requested_at is not None
    assert store.get_action(key(run)).phase == phases.QUEUED

    lifecycle.abort_queued_run(
        queue.AbortQueuedRunRequest(run_id=RunIdentifier(project=PROJECT, domain=DOMAIN, name=run))
    )
    root = store.get_action(key(run))
    assert root.phase == phases.ABORTED and root.abort_reason == "User requested abort"
    missing = queue.AbortQueuedRunRequest(run_id=RunIdentifier(project=PROJECT, domain=DOMAIN, name=unique_name()))
    assert rejected(lifecycle.abort_queued_run, missing).code is Code.NOT_FOUND
    assert (
        rejected(lifecycle.abort_queued_action, queue.AbortQueuedActionRequest(action_id=action_id(run, "zz"))).code
        is Code.NOT_FOUND
    )


# --- EventsProxyService ------------------------------------------------------------------------


def event(
    run: str, name: str = "a0", *, attempt: int = 1, phase: ActionPhase = phases.RUNNING, version: int = 0
) -> wf.ActionEvent:
    item = wf.ActionEvent(id=action_id(run, name), attempt=attempt, phase=phase, version=version)
    item.updated_time.GetCurrentTime()
    return item


def test_record_stores_events_like_record_action_events(lifecycle, store, run):
    failed = event(run, phase=phases.FAILED)
    failed.error_info.CopyFrom(wf.ErrorInfo(message="oom", kind=wf.ErrorInfo.KIND_SYSTEM))
    assert (
        lifecycle.record_events(events_proxy.RecordRequest(events=[event(run), failed]))
        == events_proxy.RecordResponse()
    )
    lifecycle.record_events(events_proxy.RecordRequest(events=[event(run)]))  # a replay: first write wins
    # nothing to record is malformed, as Flyte's RecordRequest (events: min_items = 1) says
    assert rejected(lifecycle.record_events, events_proxy.RecordRequest()).code is Code.INVALID_ARGUMENT
    stored = store.list_events(key(run))
    assert [(e.attempt, e.phase, e.error_kind) for e in stored] == [
        (1, phases.RUNNING, ""),
        (1, phases.FAILED, "KIND_SYSTEM"),
    ]
    assert wf.ActionEvent.FromString(stored[1].info) == failed

    # the same items as RecordActionEvents writes: the same events through it are replays
    before = [(e.key, e.attempt, e.phase, e.version, e.info) for e in stored]
    lifecycle.record_action_events(internal.RecordActionEventsRequest(events=[event(run), failed]))
    assert [(e.key, e.attempt, e.phase, e.version, e.info) for e in store.list_events(key(run))] == before


@pytest.mark.parametrize(
    "breaks, field",
    [
        (lambda e: e.ClearField("id"), "events[1].id"),
        (lambda e: setattr(e, "attempt", 0), "events[1].attempt"),
        (lambda e: setattr(e, "phase", 42), "events[1].phase"),
        (lambda e: setattr(e, "phase", phases.UNSPECIFIED), "events[1].phase"),
    ],
)
def test_a_malformed_event_is_refused_alone_and_writes_nothing(lifecycle, store, run, breaks, field):
    """One bad event of a batch never fails the call (tests/integration/test_events_record.py has
    the batches): it is named in the refusal header and only the good one is written."""
    bad = event(run, phase=phases.SUCCEEDED)
    breaks(bad)
    call = Call()
    lifecycle.record_events(events_proxy.RecordRequest(events=[event(run), bad]), call)
    [refused] = json.loads(call.response_headers["x-flyte-refused-events"])["refused"]
    assert refused["index"] == 1 and refused["code"] == "invalid_argument" and field in refused["message"]
    assert [(e.attempt, e.phase) for e in store.list_events(key(run))] == [(1, phases.RUNNING)]


def test_a_malformed_internal_event_is_invalid_argument_and_nothing_is_written(lifecycle, store, run):
    bad = event(run, phase=phases.SUCCEEDED)
    bad.phase = 42
    error = rejected(lifecycle.record_action_events, internal.RecordActionEventsRequest(events=[event(run), bad]))
    assert error.code is Code.INVALID_ARGUMENT and "events[1].phase" in error.message
    assert store.list_events(key(run)) == []


def test_a_storage_failure_is_a_connect_error_not_in_band(aws, run):
    broken = ActionLifecycleService(store=ActionStore(table_name="no-such-table"))
    router = ConnectRouter()
    router.mount(
        {
            "/flyteidl2.workflow.EventsProxyService/Record": (
                events_proxy.RecordRequest,
                ActionLifecycleService.record_events,
            )
        },
        lambda: broken,
        with_call=True,
    )
    response = router.dispatch(
        HttpRequest(
            method="POST",
            path="/flyteidl2.workflow.EventsProxyService/Record",
            headers={"content-type": "application/proto"},
            body=events_proxy.RecordRequest(events=[event(run)]).SerializeToString(),
        )
    )
    assert response.status == 500 and b'"internal"' in response.body
