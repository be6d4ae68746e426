"""Against moto: EventsProxyService/Record as Flyte's executor sends it (batches of up to 400 events
of unrelated actions across projects, event_batcher.go), and what GetActionDetails then reads of
the events (Flyte's mergeEvents: the oldest terminal event of an attempt wins)."""

from __future__ import annotations

import json

import pytest
from flyteidl2.common.phase_pb2 import ActionPhase
from flyteidl2.workflow import events_proxy_service_pb2 as events_proxy
from flyteidl2.workflow import run_definition_pb2 as wf
from flyteidl2.workflow import run_service_pb2 as runs

from functions.create_run.service import CreateRunService
from functions.read_runs.service import RunReader
from functions.update_action.events import MAX_EVENTS_PER_REQUEST, REFUSED_HEADER
from functions.update_action.handler import BATCH_PROCEDURES
from functions.update_action.service import ActionLifecycleService
from runplane.aws.blobs import BlobStore
from runplane.connect.codec import HttpRequest, HttpResponse
from runplane.connect.pages import PageTokens
from runplane.connect.router import ConnectRouter
from runplane.flyte import phases
from runplane.flyte.identifiers import ActionKey
from runplane.table.actions import ActionStore
from tests.builders import DOMAIN, PROJECT, action_id, create_run_request
from tests.conftest import unique_name

pytestmark = pytest.mark.integration

RECORD = "/flyteidl2.workflow.EventsProxyService/Record"
OTHER_PROJECT = "otherproject"


@pytest.fixture
def store(aws):
    return ActionStore(table_name=aws.table_name, blobs=BlobStore(), spec_prefix=f"s3://{aws.bucket}")


@pytest.fixture
def lifecycle(store):
    return ActionLifecycleService(store=store)


@pytest.fixture
def router(lifecycle):
    """Record exactly as the update_action handler mounts it, on this test's table."""
    router = ConnectRouter()
    router.mount(BATCH_PROCEDURES, lambda: lifecycle, with_call=True)
    return router


@pytest.fixture
def reader(store):
    return RunReader(store=store, tokens=PageTokens(secret=b"test"), watch_window_seconds=1.0, namespace="flyte")


@pytest.fixture
def run(aws, store):
    name = unique_name()
    CreateRunService(store=store, blobs=BlobStore(), storage_prefix=f"s3://{aws.bucket}").create_run(
        create_run_request(name)
    )
    return name


def event(
    run: str,
    name: str = "a0",
    *,
    project: str = PROJECT,
    attempt: int = 1,
    phase: ActionPhase = phases.RUNNING,
    at: int = 10,
) -> wf.ActionEvent:
    """An event as the executor's buildActionEvent makes it: version 0, updated and reported times."""
    identifier = action_id(run, name)
    identifier.run.project = project
    item = wf.ActionEvent(id=identifier, attempt=attempt, phase=phase, version=0, cluster="c1")
    item.updated_time.FromSeconds(1_700_000_000 + at)
    item.reported_time.FromSeconds(1_700_000_000 + at)
    return item


def key(run: str, name: str = "a0", *, project: str = PROJECT) -> ActionKey:
    return ActionKey(project=project, domain=DOMAIN, run=run, name=name)


def record(router, body: bytes, *, claims: dict[str, str] | None = None) -> HttpResponse:
    return router.dispatch(
        HttpRequest(
            method="POST", path=RECORD, headers={"content-type": "application/proto"}, body=body, claims=claims or {}
        )
    )


def refused_of(response: HttpResponse) -> dict:
    return json.loads(response.headers[REFUSED_HEADER])


def test_a_batch_across_projects_writes_what_the_token_allows_and_names_the_rest(router, store):
    """One Record call of the executor: two actions of the token's project, one of a project the
    token may not use, one malformed event. The call succeeds, the two valid events are written,
    the response header names the two refused ones (index, code, message), and nothing of those
    was written."""
    mine, other = unique_name(), unique_name()
    malformed = event(mine, "a1", phase=phases.SUCCEEDED)
    malformed.phase = 42
    batch = [
        event(mine, "a0"),
        event(other, "a0", project=OTHER_PROJECT),
        malformed,
        event(mine, "a2", phase=phases.SUCCEEDED, at=20),
    ]
    response = record(
        router, events_proxy.RecordRequest(events=batch).SerializeToString(), claims={"projects": PROJECT}
    )

    assert response.status == 200
    assert events_proxy.RecordResponse.FromString(response.body) == events_proxy.RecordResponse()
    refused = refused_of(response)
    assert refused["count"] == 2
    assert [(r["index"], r["code"]) for r in refused["refused"]] == [(1, "permission_denied"), (2, "invalid_argument")]
    assert OTHER_PROJECT in refused["refused"][0]["message"]
    assert "events[2].phase" in refused["refused"][1]["message"]
    assert [(e.attempt, e.phase) for e in store.list_events(key(mine, "a0"))] == [(1, phases.RUNNING)]
    assert [(e.attempt, e.phase) for e in store.list_events(key(mine, "a2"))] == [(1, phases.SUCCEEDED)]
    assert store.list_events(key(mine, "a1")) == []
    assert store.list_events(key(other, "a0", project=OTHER_PROJECT)) == []

    # the executor redelivers the batch (its reconcile requeued): a no-op, the same answer
    again = record(router, events_proxy.RecordRequest(events=batch).SerializeToString(), claims={"projects": PROJECT})
    assert again.status == 200 and refused_of(again) == refused
    assert len(store.list_events(key(mine, "a0"))) == 1 and len(store.list_events(key(mine, "a2"))) == 1


def test_a_token_without_a_projects_claim_writes_every_project_and_no_refusal_header(router, store):
    mine, other = unique_name(), unique_name()
    batch = [event(mine), event(other, project=OTHER_PROJECT)]
    response = record(router, events_proxy.RecordRequest(events=batch).SerializeToString())
    assert response.status == 200 and REFUSED_HEADER not in response.headers
    assert len(store.list_events(key(mine))) == 1
    assert len(store.list_events(key(other, project=OTHER_PROJECT))) == 1


def test_a_full_batch_of_mixed_actions_is_written_whole(router, store):
    """400 events (eventBatchMaxSize) of 100 actions in two projects, four transitions each."""
    run_a, run_b = unique_name(), unique_name()
    batch = [
        event(run_a if n % 2 else run_b, f"c{n}", project=PROJECT if n % 2 else OTHER_PROJECT, phase=phase, at=at)
        for n in range(100)
        for at, phase in enumerate((phases.QUEUED, phases.INITIALIZING, phases.RUNNING, phases.SUCCEEDED))
    ]
    assert len(batch) == MAX_EVENTS_PER_REQUEST
    response = record(router, events_proxy.RecordRequest(events=batch).SerializeToString())
    assert response.status == 200 and REFUSED_HEADER not in response.headers
    for n in (0, 1, 98, 99):
        project, run = (PROJECT, run_a) if n % 2 else (OTHER_PROJECT, run_b)
        assert len(store.list_events(key(run, f"c{n}", project=project))) == 4


def test_a_request_malformed_as_a_whole_is_invalid_argument_naming_the_field(router, run, store):
    empty = record(router, events_proxy.RecordRequest().SerializeToString())
    assert empty.status == 400 and json.loads(empty.body)["code"] == "invalid_argument"
    assert "events" in json.loads(empty.body)["message"]

    too_many = events_proxy.RecordRequest(events=[event(run, f"c{n}") for n in range(MAX_EVENTS_PER_REQUEST + 1)])
    response = record(router, too_many.SerializeToString())
    assert response.status == 400 and "events" in json.loads(response.body)["message"]

    garbage = record(router, b"\xff\xff\xff not a RecordRequest")
    assert garbage.status == 400 and json.loads(garbage.body)["code"] == "invalid_argument"
    assert store.list_events(key(run)) == [] and store.list_events(key(run, "c0")) == []


def test_every_event_refused_still_answers_ok_so_the_executor_goes_on(router, run, store):
    """Refusing the call would fail every action of the batch; each refusal is the event's alone
    (and a malformed event is named as malformed, whatever the token's projects)."""
    no_id = event(run)
    no_id.ClearField("id")
    zero = event(run, attempt=0)
    response = record(
        router, events_proxy.RecordRequest(events=[no_id, zero]).SerializeToString(), claims={"projects": PROJECT}
    )
    assert response.status == 200
    refused = refused_of(response)["refused"]
    assert [(r["index"], r["code"]) for r in refused] == [(0, "invalid_argument"), (1, "invalid_argument")]
    assert "events[0].id" in refused[0]["message"] and "events[1].attempt" in refused[1]["message"]
    assert store.list_events(key(run)) == []


def test_a_succeeded_attempt_aborted_later_reads_succeeded_ending_when_it_succeeded(lifecycle, reader, run):
    """The real executor sends ABORTED on every deletion, the TTL collection of an attempt that had
    already SUCCEEDED too (handleAbortAndFinalize); mergeEvents keeps the oldest terminal event."""
    lifecycle.record_events(
        events_proxy.RecordRequest(
            events=[
                event(run, phase=phases.RUNNING, at=10),
                event(run, phase=phases.SUCCEEDED, at=30),
                event(run, phase=phases.ABORTED, at=90),
            ]
        )
    )
    details = reader.get_action_details(runs.GetActionDetailsRequest(action_id=action_id(run, "a0"))).details
    [attempt] = details.attempts
    assert attempt.phase == phases.SUCCEEDED
    assert attempt.start_time.seconds == 1_700_000_010 and attempt.end_time.seconds == 1_700_000_030
    assert [t.phase for t in attempt.phase_transitions] == [phases.RUNNING, phases.SUCCEEDED]


def test_a_retried_attempt_ends_when_the_next_one_starts(lifecycle, reader, run):
    """A user-retryable failure restarts the task in place: the executor's last event of attempt 1
    is RUNNING, the next is QUEUED of attempt 2 (reconcileTask, restartAttempts); no terminal
    event of attempt 1 ever comes."""
    lifecycle.record_events(
        events_proxy.RecordRequest(
            events=[
                event(run, phase=phases.QUEUED, at=10),
                event(run, phase=phases.RUNNING, at=20),
                event(run, attempt=2, phase=phases.QUEUED, at=50),
                event(run, attempt=2, phase=phases.RUNNING, at=60),
            ]
        )
    )
    details = reader.get_action_details(runs.GetActionDetailsRequest(action_id=action_id(run, "a0"))).details
    first, second = details.attempts
    assert first.phase == phases.FAILED and first.end_time.seconds == 1_700_000_050
    assert first.phase_transitions[-1].end_time.seconds == 1_700_000_050
    assert second.phase == phases.RUNNING and not second.HasField("end_time")
