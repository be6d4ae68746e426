"""A task pod's run-scoped token (claim ``flyte_run``, runplane.connect.run_scope) against
another project's run, through the real procedure tables of update_action and read_runs
(their handlers' routers, services against moto): status, abort, enqueue, record, events and the
watches are ``permission_denied`` and write or read nothing; the same token on its own run works."""

from __future__ import annotations

import json
import struct
from datetime import UTC, datetime

import pytest
from flyteidl2.actions import actions_service_pb2 as actions
from flyteidl2.common.phase_pb2 import ACTION_PHASE_RUNNING
from flyteidl2.workflow import internal_run_service_pb2 as internal
from flyteidl2.workflow import queue_service_pb2 as queue
from flyteidl2.workflow import run_definition_pb2 as wf
from flyteidl2.workflow import run_service_pb2 as runs
from flyteidl2.workflow import state_service_pb2 as state

from functions.create_run.service import CreateRunService
from functions.read_runs import handler as read_handler
from functions.read_runs.service import RunReader
from functions.update_action import handler as update_handler
from functions.update_action.service import ActionLifecycleService
from runplane.aws.blobs import BlobStore
from runplane.connect.codec import HttpRequest
from runplane.connect.pages import PageTokens
from runplane.connect.router import ConnectRouter
from runplane.connect.run_scope import RUN_CLAIM
from runplane.connect.streams import envelope
from runplane.flyte import phases
from runplane.flyte.identifiers import ActionKey
from runplane.table.actions import ActionStore
from tests.builders import DOMAIN, action_id, child_task_action, create_run_request
from tests.conftest import unique_name

pytestmark = pytest.mark.integration

TEAM_A, TEAM_B = "team-a", "team-b"


@pytest.fixture
def store(aws):
    return ActionStore(table_name=aws.table_name, blobs=BlobStore(), spec_prefix=f"s3://{aws.bucket}")


@pytest.fixture
def routers(aws, store):
    """update_action's and read_runs' procedures, exactly as their handlers mount them."""
    lifecycle = ActionLifecycleService(store=store)
    reader = RunReader(store=store, tokens=PageTokens(secret=b"k" * 32), watch_window_seconds=0.5)
    router = ConnectRouter()
    router.mount(update_handler.PROCEDURES, lambda: lifecycle)
    router.mount(read_handler.UNARY, lambda: reader)
    router.mount(read_handler.STREAMS, lambda: reader, streaming=True)
    return router


@pytest.fixture
def runs_of(aws, store):
    service = CreateRunService(store=store, blobs=BlobStore(), storage_prefix=f"s3://{aws.bucket}")

    def create(project: str) -> str:
        name = unique_name()
        service.create_run(create_run_request(name, project=project))
        return name

    return create


def token_of(project: str, run: str) -> dict[str, str]:
    """The claims API Gateway's authorizer hands over for a task pod's token."""
    return {"sub": f"run:{project}/{DOMAIN}/{run}", "scope": "flyte/data-plane", RUN_CLAIM: f"{project}/{DOMAIN}/{run}"}


def call(router, path: str, message, claims) -> tuple[int, dict]:
    response = router.dispatch(
        HttpRequest(
            method="POST",
            path=path,
            headers={"content-type": "application/json"},
            body=_json(message),
            claims=claims,
        )
    )
    return response.status, json.loads(response.body or b"{}")


def stream(router, path: str, message, claims) -> dict:
    payload = message.SerializeToString()
    response = router.dispatch(
        HttpRequest(
            method="POST",
            path=path,
            headers={"content-type": "application/connect+proto"},
            body=envelope(payload),
            claims=claims,
        )
    )
    body, frames = response.body, []
    while body:
        flags, length = struct.unpack(">BI", body[:5])
        frames.append((flags, body[5 : 5 + length]))
        body = body[5 + length :]
    return {"messages": len(frames) - 1, "end": json.loads(frames[-1][1])}


def _json(message) -> bytes:
    from google.protobuf import json_format

    return json_format.MessageToJson(message).encode()


def b_actions(store, run: str) -> dict[str, tuple]:
    """Every action of B's run: phase and attempts; what a refused call must leave as it was."""
    items = {}
    for name in ("a0", "c1", "c9"):
        record = store.get_action(ActionKey(TEAM_B, DOMAIN, run, name))
        if record is not None:
            items[name] = (record.phase, record.attempts, record.abort_requested_at)
    return items


UPDATE = "/flyteidl2.workflow.InternalRunService"


def attempts(run: str, project: str = TEAM_B):
    status = wf.ActionStatus(phase=ACTION_PHASE_RUNNING, attempts=1)
    return {
        "status": (
            f"{UPDATE}/UpdateActionStatus",
            internal.UpdateActionStatusRequest(action_id=action_id(run, "a0", project=project), status=status),
        ),
        "abort": (
            "/flyteidl2.actions.ActionsService/Abort",
            actions.AbortRequest(action_id=action_id(run, "a0", project=project)),
        ),
        "abort run": (
            "/flyteidl2.workflow.RunService/AbortRun",
            runs.AbortRunRequest(run_id=action_id(run, "a0", project=project).run),
        ),
        "enqueue": ("/flyteidl2.actions.ActionsService/Enqueue", child_task_action(run, "c1", project=project)),
        "enqueue action": (
            "/flyteidl2.workflow.QueueService/EnqueueAction",
            queue.EnqueueActionRequest(
                action_id=action_id(run, "c1", project=project),
                parent_action_name="a0",
                task=child_task_action(run, "c1", project=project).action.task,
            ),
        ),
        "record": (
            f"{UPDATE}/RecordAction",
            internal.RecordActionRequest(
                action_id=action_id(run, "c9", project=project),
                parent="a0",
                task=child_task_action(run, "c9", project=project).action.task,
            ),
        ),
        "events": (f"{UPDATE}/RecordActionEvents", internal.RecordActionEventsRequest(events=[_event(run, project)])),
        "details": (
            "/flyteidl2.workflow.RunService/GetRunDetails",
            runs.GetRunDetailsRequest(run_id=action_id(run, "a0", project=project).run),
        ),
    }


def _event(run: str, project: str) -> wf.ActionEvent:
    event = wf.ActionEvent(id=action_id(run, "a0", project=project), attempt=1, phase=ACTION_PHASE_RUNNING, version=1)
    event.updated_time.FromDatetime(datetime.now(UTC))
    return event


@pytest.mark.parametrize(
    "what", ["status", "abort", "abort run", "enqueue", "enqueue action", "record", "events", "details"]
)
def test_a_project_a_task_token_cannot_act_on_project_bs_run(routers, store, runs_of, what):
    mine, theirs = runs_of(TEAM_A), runs_of(TEAM_B)
    before = b_actions(store, theirs)
    path, message = attempts(theirs)[what]
    status, body = call(routers, path, message, token_of(TEAM_A, mine))
    assert status == 403 and body["code"] == "permission_denied", body
    assert b_actions(store, theirs) == before  # nothing written
    assert store.list_events(ActionKey(TEAM_B, DOMAIN, theirs, "a0")) == []


def test_a_run_token_cannot_reach_another_run_of_its_own_project(routers, store, runs_of):
    mine, other = runs_of(TEAM_A), runs_of(TEAM_A)
    path, message = attempts(other, project=TEAM_A)["abort"]
    status, body = call(routers, path, message, token_of(TEAM_A, mine))
    assert status == 403 and body["code"] == "permission_denied"
    assert store.get_action(ActionKey(TEAM_A, DOMAIN, other, "a0")).phase == phases.QUEUED


@pytest.mark.parametrize(
    ("path", "request_of"),
    [
        (
            "/flyteidl2.actions.ActionsService/WatchForUpdates",
            lambda run: actions.WatchForUpdatesRequest(parent_action_id=action_id(run, "a0", project=TEAM_B)),
        ),
        (
            "/flyteidl2.workflow.StateService/Watch",
            lambda run: state.WatchRequest(parent_action_id=action_id(run, "a0", project=TEAM_B)),
        ),
        (
            "/flyteidl2.workflow.RunService/WatchActionDetails",
            lambda run: runs.WatchActionDetailsRequest(action_id=action_id(run, "a0", project=TEAM_B)),
        ),
        ("/flyteidl2.workflow.RunService/WatchRuns", lambda run: runs.WatchRunsRequest()),  # names no run
    ],
)
def test_a_project_a_task_token_cannot_watch_project_bs_run(routers, runs_of, path, request_of):
    mine, theirs = runs_of(TEAM_A), runs_of(TEAM_B)
    answer = stream(routers, path, request_of(theirs), token_of(TEAM_A, mine))
    assert answer["messages"] == 0 and answer["end"]["error"]["code"] == "permission_denied"


def test_the_same_token_works_on_its_own_run(routers, store, runs_of):
    mine = runs_of(TEAM_A)
    claims = token_of(TEAM_A, mine)
    for what in ("status", "enqueue", "events", "details"):
        path, message = attempts(mine, project=TEAM_A)[what]
        status, body = call(routers, path, message, claims)
        assert status == 200, (what, body)
    assert store.get_action(ActionKey(TEAM_A, DOMAIN, mine, "c1")) is not None
    watch = actions.WatchForUpdatesRequest(parent_action_id=action_id(mine, "a0", project=TEAM_A))
    answer = stream(routers, "/flyteidl2.actions.ActionsService/WatchForUpdates", watch, claims)
    assert answer["messages"] >= 1 and "error" not in answer["end"]


def test_a_malformed_run_claim_limits_the_token_to_nothing(routers, runs_of):
    theirs = runs_of(TEAM_B)
    path, message = attempts(theirs)["status"]
    status, body = call(routers, path, message, {RUN_CLAIM: "garbage"})
    assert status == 403 and body["code"] == "permission_denied"
