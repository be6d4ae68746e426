"""The read side against moto: details with attempts, paged action lists, watches."""

from __future__ import annotations

import pytest
from flyteidl2.common.identifier_pb2 import RunIdentifier
from flyteidl2.workflow import internal_run_service_pb2 as internal
from flyteidl2.workflow import run_definition_pb2 as wf
from flyteidl2.workflow import run_service_pb2 as runs

from functions.read_runs.service import RunReader
from runplane.connect.errors import Code
from runplane.connect.pages import PageTokens
from runplane.flyte import phases
from tests.builders import DOMAIN, PROJECT, action_id, child_task_action
from tests.conftest import unique_name
from tests.refusals import REFUSED, code_of

pytestmark = pytest.mark.integration


def run_id(name):
    return RunIdentifier(project=PROJECT, domain=DOMAIN, name=name)


def test_run_details_carry_the_task_spec_run_spec_and_attempts(reader, lifecycle, run):
    events = [
        wf.ActionEvent(id=action_id(run, "a0"), attempt=1, phase=p, version=0) for p in (phases.RUNNING, phases.FAILED)
    ]
    for i, e in enumerate(events):
        e.updated_time.FromSeconds(100 + i)
    events[1].error_info.CopyFrom(wf.ErrorInfo(message="boom", kind=wf.ErrorInfo.KIND_USER))
    lifecycle.record_action_events(internal.RecordActionEventsRequest(events=events))
    lifecycle.update_action_status(
        internal.UpdateActionStatusRequest(
            action_id=action_id(run, "a0"), status=wf.ActionStatus(phase=phases.FAILED, attempts=1)
        )
    )

    details = reader.get_run_details(runs.GetRunDetailsRequest(run_id=run_id(run))).details
    assert details.action.id.name == "a0" and details.action.task.task_template.type == "python-task"
    assert details.run_spec.raw_data_storage.raw_data_prefix.startswith("s3://")
    assert details.action.status.phase == phases.FAILED and details.action.status.HasField("duration_ms")
    assert [a.phase for a in details.action.attempts] == [phases.FAILED]
    assert details.action.error_info.message == "boom"


def test_missing_runs_and_actions_are_not_found(reader, run):
    with pytest.raises(REFUSED) as info:
        reader.get_run_details(runs.GetRunDetailsRequest(run_id=run_id(unique_name())))
    assert code_of(info.value) is Code.NOT_FOUND
    with pytest.raises(REFUSED) as info:
        reader.get_action_details(runs.GetActionDetailsRequest(action_id=action_id(run, "nope")))
    assert code_of(info.value) is Code.NOT_FOUND


def test_aborted_actions_show_the_reason(reader, lifecycle, run):
    lifecycle.abort_run(runs.AbortRunRequest(run_id=run_id(run), reason="stop it"))
    details = reader.get_action_details(runs.GetActionDetailsRequest(action_id=action_id(run, "a0"))).details
    assert details.status.phase == phases.ABORTED and details.abort_info.reason == "stop it"


def list_actions(reader, run, **fields):
    from flyteidl2.common.list_pb2 import ListRequest
    from google.protobuf import json_format

    request = json_format.ParseDict(fields, ListRequest())
    return reader.list_actions(runs.ListActionsRequest(run_id=run_id(run), request=request))


def test_list_actions_pages_in_flytes_default_order_until_an_empty_token(reader, lifecycle, run):
    for i in range(7):
        lifecycle.enqueue(child_task_action(run, f"c{i}"))
    seen, token, pages = [], "", 0
    while True:
        response = list_actions(reader, run, limit=3, token=token)
        seen.extend(a.id.name for a in response.actions)
        pages += 1
        token = response.token
        if not token:
            break
    # phase ASC (all queued), then newest first: the children in reverse, then the root
    assert pages == 3 and seen == [f"c{i}" for i in reversed(range(7))] + ["a0"]


def test_list_actions_takes_every_sort_and_filter_flyte_takes(reader, lifecycle, run):
    for i in range(3):
        lifecycle.enqueue(child_task_action(run, f"c{i}"))
    lifecycle.update_action_status(
        internal.UpdateActionStatusRequest(
            action_id=action_id(run, "c1"), status=wf.ActionStatus(phase=phases.SUCCEEDED, attempts=1)
        )
    )

    def names(**fields):
        return [a.id.name for a in list_actions(reader, run, **fields).actions]

    assert names(sortByFields=[{"key": "created_at", "direction": "ASCENDING"}]) == ["a0", "c0", "c1", "c2"]
    assert names(sortBy={"key": "created_at", "direction": "ASCENDING"}) == ["a0", "c0", "c1", "c2"]  # the CLI's
    assert names() == ["c2", "c0", "a0", "c1"]  # phase ASC, created_at DESC
    assert names(filters=[{"field": "phase", "function": "EQUAL", "values": ["5"]}]) == ["c1"]
    assert names(filters=[{"field": "phase", "function": "VALUE_IN", "values": ["1", "5"]}]) == ["c2", "c0", "a0", "c1"]
    assert names(filters=[{"field": "ended_at", "function": "GREATER_THAN", "values": ["2000-01-01"]}]) == ["c1"]
    assert names(filters=[{"field": "duration_ms", "function": "GREATER_THAN_OR_EQUAL", "values": ["0"]}]) == ["c1"]
    assert names(filters=[{"field": "task_name", "function": "CONTAINS", "values": ["child"]}]) == ["c2", "c0", "c1"]
    assert names(filters=[{"field": "run_name", "function": "EQUAL", "values": [run]}]) == ["c2", "c0", "a0", "c1"]
    assert names(filters=[{"field": "trigger_name", "function": "NOT_EQUAL", "values": ["x"]}]) == []  # NULL
    assert names(
        sortByFields=[{"key": "phase", "direction": "DESCENDING"}, {"key": "created_at", "direction": "ASCENDING"}]
    ) == ["c1", "a0", "c0", "c2"]


@pytest.mark.parametrize(
    "request_fields, message",
    [
        ({"limit": 201}, "request.limit"),
        ({"token": "forged.token"}, "request.token"),
        ({"filters": [{"field": "name", "values": ["a0"]}]}, "'name'"),  # not in Flyte's allowlist either
        ({"filters": [{"field": "nope", "values": ["4"]}]}, "'nope'"),
        ({"filters": [{"field": "trigger_type", "values": ["TYPE_SCHEDULE"]}]}, "'trigger_type'"),
        ({"filters": [{"field": "phase", "function": "VALUE_NOT_IN", "values": ["4"]}]}, "VALUE_NOT_IN"),
        ({"filters": [{"field": "phase", "values": ["running-ish"]}]}, "phase"),
        ({"sortByFields": [{"key": "parent"}]}, "'parent'"),
    ],
)
def test_bad_list_requests_name_the_field(reader, run, request_fields, message):
    with pytest.raises(REFUSED) as info:
        list_actions(reader, run, **request_fields)
    assert code_of(info.value) is Code.INVALID_ARGUMENT and message in info.value.message


def test_watch_sends_the_state_then_the_next_change(reader, lifecycle, run):
    import threading

    def later():
        lifecycle.update_action_status(
            internal.UpdateActionStatusRequest(
                action_id=action_id(run, "a0"), status=wf.ActionStatus(phase=phases.RUNNING, attempts=1)
            )
        )

    timer = threading.Timer(0.3, later)
    timer.start()
    frames = list(reader.watch_action_details(runs.WatchActionDetailsRequest(action_id=action_id(run, "a0"))))
    timer.join()
    assert [f.details.status.phase for f in frames] == [phases.QUEUED, phases.RUNNING]


def test_watch_of_an_ended_action_is_one_frame(reader, lifecycle, run):
    lifecycle.update_action_status(
        internal.UpdateActionStatusRequest(
            action_id=action_id(run, "a0"), status=wf.ActionStatus(phase=phases.SUCCEEDED, attempts=1)
        )
    )
    frames = list(reader.watch_run_details(runs.WatchRunDetailsRequest(run_id=run_id(run))))
    assert [f.details.action.status.phase for f in frames] == [phases.SUCCEEDED]


def test_watch_runs_lists_then_reports_the_change(store, lifecycle, run):
    """The change lands while the watch waits between two listings (its ``sleep``): on moto a
    listing of the shared table takes longer than any fixed delay would be sure to."""
    import time

    from flyteidl2.common.identifier_pb2 import ProjectIdentifier

    changes = [
        lambda: lifecycle.update_action_status(
            internal.UpdateActionStatusRequest(
                action_id=action_id(run, "a0"), status=wf.ActionStatus(phase=phases.RUNNING, attempts=1)
            )
        )
    ]

    def sleep(seconds: float) -> None:
        while changes:
            changes.pop()()
        time.sleep(seconds)

    reader = RunReader(store=store, tokens=PageTokens(secret=b"test"), watch_window_seconds=1.0, sleep=sleep)
    frames = list(reader.watch_runs(runs.WatchRunsRequest(project_id=ProjectIdentifier(name=PROJECT, domain=DOMAIN))))
    assert run in [r.action.id.run.name for r in frames[0].runs]
    assert [(r.action.id.run.name, r.action.status.phase) for r in frames[1].runs] == [(run, phases.RUNNING)]


def test_watch_actions_sends_the_tree_then_the_change(reader, lifecycle, run):
    import threading

    lifecycle.enqueue(child_task_action(run, "c1"))
    timer = threading.Timer(
        0.5,
        lambda: lifecycle.update_action_status(
            internal.UpdateActionStatusRequest(
                action_id=action_id(run, "c1"), status=wf.ActionStatus(phase=phases.RUNNING, attempts=1)
            )
        ),
    )
    timer.start()
    frames = list(reader.watch_actions(runs.WatchActionsRequest(run_id=run_id(run))))
    timer.join()
    first = {e.action.id.name: e for e in frames[0].enriched_actions}
    assert set(first) == {"a0", "c1"} and dict(first["a0"].children_phase_counts) == {phases.QUEUED: 1}
    assert [
        (e.action.id.name, e.action.status.phase) for e in frames[1].enriched_actions if e.action.id.name == "c1"
    ] == [("c1", phases.RUNNING)]


def test_watch_of_a_missing_run_is_not_found(reader):
    with pytest.raises(REFUSED) as info:
        list(reader.watch_actions(runs.WatchActionsRequest(run_id=run_id(unique_name()))))
    assert code_of(info.value) is Code.NOT_FOUND
