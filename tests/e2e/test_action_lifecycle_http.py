"""A run driven to its end over HTTP through the local front, in JSON and in binary proto, as
Flyte's data plane and SDK would drive it."""

from __future__ import annotations

import json

import pytest
from flyteidl2.actions import actions_service_pb2 as actions
from flyteidl2.common.identifier_pb2 import RunIdentifier
from flyteidl2.workflow import internal_run_service_pb2 as internal
from flyteidl2.workflow import run_definition_pb2 as wf
from flyteidl2.workflow import run_service_pb2 as runs

from runplane.flyte import phases
from runplane.flyte.identifiers import ActionKey
from runplane.table.actions import ActionStore
from tests.builders import DOMAIN, PROJECT, action_id, child_task_action, create_run_request
from tests.conftest import unique_name
from tests.e2e.test_create_run_http import post, post_json, post_proto_gzip

pytestmark = pytest.mark.e2e

ACTIONS = "/flyteidl2.actions.ActionsService"
INTERNAL = "/flyteidl2.workflow.InternalRunService"
RUNS = "/flyteidl2.workflow.RunService"


def call_proto(stack, path, message, response_type):
    status, _, body = post_proto_gzip(stack, message, path)
    assert status == 200, body
    return response_type.FromString(body)


def call_json(stack, path, message):
    status, _, body = post_json(stack, message, path)
    assert status == 200, body
    return json.loads(body)


@pytest.fixture
def store(stack):
    return ActionStore(table_name=stack.aws.table_name)


def key(run, name="a0"):
    return ActionKey(project=PROJECT, domain=DOMAIN, run=run, name=name)


def test_a_run_with_a_child_is_driven_to_success(stack, store):
    run = unique_name()
    assert post_proto_gzip(stack, create_run_request(run))[0] == 200

    call_proto(stack, f"{ACTIONS}/Enqueue", child_task_action(run, "c1"), actions.EnqueueResponse)
    for phase in (phases.RUNNING, phases.SUCCEEDED):
        response = call_json(
            stack,
            f"{INTERNAL}/UpdateActionStatus",
            internal.UpdateActionStatusRequest(
                action_id=action_id(run, "c1"), status=wf.ActionStatus(phase=phase, attempts=1)
            ),
        )
        assert response["status"].get("code", 0) == 0
    events = internal.RecordActionEventsRequest(
        events=[wf.ActionEvent(id=action_id(run, "c1"), attempt=1, phase=phases.SUCCEEDED, version=1)]
    )
    assert (
        call_proto(stack, f"{INTERNAL}/RecordActionEvents", events, internal.RecordActionEventsResponse).status.code
        == 0
    )
    call_proto(
        stack,
        f"{INTERNAL}/UpdateActionStatus",
        internal.UpdateActionStatusRequest(
            action_id=action_id(run, "a0"), status=wf.ActionStatus(phase=phases.SUCCEEDED, attempts=1)
        ),
        internal.UpdateActionStatusResponse,
    )

    child, root = store.get_action(key(run, "c1")), store.get_action(key(run))
    assert child.phase == phases.SUCCEEDED and child.ended_at is not None
    assert root.phase == phases.SUCCEEDED
    assert len(store.list_events(key(run, "c1"))) == 1


def test_abort_over_http_and_a_missing_run(stack, store):
    run = unique_name()
    post_json(stack, create_run_request(run))
    body = call_json(
        stack,
        f"{RUNS}/AbortRun",
        runs.AbortRunRequest(run_id=RunIdentifier(project=PROJECT, domain=DOMAIN, name=run), reason="stop"),
    )
    assert body == {}
    record = store.get_action(key(run))
    assert record.phase == phases.ABORTED and record.abort_reason == "stop"

    status, _, body = post_json(
        stack,
        runs.AbortRunRequest(run_id=RunIdentifier(project=PROJECT, domain=DOMAIN, name=unique_name())),
        f"{RUNS}/AbortRun",
    )
    assert status == 404 and json.loads(body)["code"] == "not_found"


@pytest.mark.parametrize(
    "path, body, status, code",
    [
        (
            f"{ACTIONS}/Enqueue",
            b'{"action": {"actionId": {"run": {"project": "p", "domain": "d", "name": "r"}, "name": "c1"}}}',
            400,
            "invalid_argument",
        ),
        (
            f"{INTERNAL}/UpdateActionStatus",
            b'{"actionId": {"run": {"project": "p", "domain": "d", "name": "r"}, "name": "a0"}, "status": {"phase": 42}}',
            400,
            "invalid_argument",
        ),
        (
            f"{ACTIONS}/Update",
            b'{"actionId": {"run": {"project": "p", "domain": "d", "name": "r"}, "name": "a0"}, "attempt": 0}',
            400,
            "invalid_argument",
        ),
        (
            f"{INTERNAL}/RecordActionEvents",
            b'{"events": [{"id": {"run": {"project": "p", "domain": "d", "name": "r"}, "name": "a0"}, "attempt": 0, "phase": 4}]}',
            400,
            "invalid_argument",
        ),
        (f"{RUNS}/AbortAction", b'{"actionId": {"name": "a0"}}', 400, "invalid_argument"),
        (f"{ACTIONS}/Abort", b"{oops", 400, "invalid_argument"),
    ],
)
def test_bad_input_is_a_4xx_connect_error(stack, path, body, status, code):
    got_status, _, got_body = post(stack, body, {"Content-Type": "application/json"}, path)
    assert got_status == status and json.loads(got_body)["code"] == code


def test_enqueue_under_a_missing_parent_over_http(stack, store):
    run = unique_name()
    post_json(stack, create_run_request(run))
    status, _, body = post_json(stack, child_task_action(run, "c2", parent="nope"), f"{ACTIONS}/Enqueue")
    assert status == 404 and json.loads(body)["code"] == "not_found"
    assert store.get_action(key(run, "c2")) is None
