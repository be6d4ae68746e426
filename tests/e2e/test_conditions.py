"""Condition actions end to end: a condition child enqueued under a running root is Paused by the
local executor; RunService/SignalEvent (over HTTP, a user token) writes the signal once, reconcile
relays it into the TaskAction's status, and the executor resolves it (Signaled -> SUCCEEDED), or
its timeout passes (TimedOut). Refusals: a second, different signal; a payload of the wrong type;
a token limited to another project."""

from __future__ import annotations

import gzip

import pytest
from flyteidl2.core.types_pb2 import LiteralType, SimpleType
from flyteidl2.workflow import run_definition_pb2 as wf
from flyteidl2.workflow import run_service_pb2 as runs

from runplane.flyte.identifiers import ActionKey, taskaction_name
from tests.builders import DOMAIN, PROJECT, action_id, child_task_action, create_run_request, task_spec
from tests.conftest import unique_name, wait_for
from tests.e2e.test_create_run_http import post, post_proto_gzip

pytestmark = pytest.mark.e2e

SIGNAL = "/flyteidl2.workflow.RunService/SignalEvent"
ENQUEUE = "/flyteidl2.actions.ActionsService/Enqueue"


@pytest.fixture(scope="module")
def data_plane(stack):
    with stack.data_plane():
        yield stack


def _condition_of(status: dict) -> tuple[str, str] | None:
    for condition in status.get("conditions") or []:
        if condition.get("status") == "True":
            return condition["type"], condition["reason"]
    return None


def _paused_condition(stack, get_taskaction, *, simple: SimpleType, timeout_seconds: int = 0) -> tuple[str, str]:
    run = unique_name()
    sleeper = task_spec(name="sleep.main", args=("python", "-c", "import time; time.sleep(60)"))
    assert post_proto_gzip(stack, create_run_request(run, spec=sleeper), headers=stack.user_headers())[0] == 200
    wait_for(
        lambda: get_taskaction(taskaction_name(ActionKey(PROJECT, DOMAIN, run, "a0"))),
        timeout=20,
        what="the root's TaskAction",
    )
    request = child_task_action(run, "approve")
    request.action.ClearField("task")
    condition = wf.ConditionAction(name="approve", type=LiteralType(simple=simple), prompt="ok?")
    if timeout_seconds:
        condition.timeout.FromSeconds(timeout_seconds)
    request.action.condition.CopyFrom(condition)
    status, _, body = post_proto_gzip(stack, request, path=ENQUEUE, headers=stack.data_plane_headers())
    assert status == 200, body
    name = taskaction_name(ActionKey(PROJECT, DOMAIN, run, "approve"))
    wait_for(
        lambda: _condition_of((get_taskaction(name) or {}).get("status") or {}) == ("Progressing", "Paused"),
        timeout=30,
        what="the condition to be Paused",
    )
    return run, name


def _signal(stack, run: str, payload: runs.EventPayload, *, headers=None) -> tuple[int, bytes]:
    request = runs.SignalEventRequest(action_id=action_id(run, "approve"), payload=payload)
    status, _, body = post_proto_gzip(stack, request, path=SIGNAL, headers=headers or stack.user_headers())
    return status, body


def test_a_condition_signalled_with_true_succeeds_and_a_second_signal_is_refused(data_plane, get_taskaction):
    stack = data_plane
    run, name = _paused_condition(stack, get_taskaction, simple=SimpleType.BOOLEAN)
    with stack.authentication():
        assert _signal(stack, run, runs.EventPayload(bool_value=True))[0] == 200
        assert _signal(stack, run, runs.EventPayload(bool_value=True))[0] == 200  # the same again: a retry
        status, body = _signal(stack, run, runs.EventPayload(bool_value=False))
    assert status == 400 and b"failed_precondition" in body, body  # another value: refused
    resource = wait_for(
        lambda: (r := get_taskaction(name)) and _condition_of(r.get("status") or {}) == ("Succeeded", "Signaled") and r,
        timeout=30,
        what="the condition to be Signaled",
    )
    assert resource["status"]["signalledAt"] and resource["status"]["signalledBy"]


def test_a_condition_signalled_with_a_value_and_the_wrong_type_is_invalid_argument(data_plane, get_taskaction):
    stack = data_plane
    run, name = _paused_condition(stack, get_taskaction, simple=SimpleType.STRING)
    status, body = _signal(stack, run, runs.EventPayload(int_value=3))
    assert status == 400 and b"invalid_argument" in body, body
    assert _signal(stack, run, runs.EventPayload(string_value="ship it"))[0] == 200
    import flyte
    import flyte.remote

    flyte.init(endpoint=stack.endpoint, insecure=True, org="o", project=PROJECT, domain=DOMAIN)
    listed = list(flyte.remote.Condition.listall(run_name=run))
    assert [c.name for c in listed] == ["approve"]
    assert [c.name for c in flyte.remote.Condition.listall(run_name=run, action_name="a0")] == ["approve"]
    assert list(flyte.remote.Condition.listall(run_name=run, action_name="approve")) == []
    wait_for(
        lambda: _condition_of((get_taskaction(name) or {}).get("status") or {}) == ("Succeeded", "Signaled"),
        timeout=30,
        what="the condition to be Signaled",
    )


def test_a_condition_without_a_signal_times_out(data_plane, get_taskaction):
    run, name = _paused_condition(data_plane, get_taskaction, simple=SimpleType.BOOLEAN, timeout_seconds=3)
    resource = wait_for(
        lambda: (r := get_taskaction(name)) and _condition_of(r.get("status") or {}) == ("Failed", "TimedOut") and r,
        timeout=30,
        what="the condition to time out",
    )
    assert resource["status"]["errorState"]["code"] == "ConditionTimedOut"
    status, body = _signal(data_plane, run, runs.EventPayload(bool_value=True))
    assert status == 400 and b"failed_precondition" in body, body  # ended: too late


def test_a_signal_for_another_projects_run_or_an_unknown_action_is_refused(data_plane, get_taskaction):
    stack = data_plane
    run, _ = _paused_condition(stack, get_taskaction, simple=SimpleType.BOOLEAN)
    token = stack.auth.issuer.mint(subject="someone", scopes=[stack.auth.user_scope], projects=["another"])
    with stack.authentication():
        status, body = _signal(
            stack, run, runs.EventPayload(bool_value=True), headers={"Authorization": f"Bearer {token}"}
        )
    assert status == 403 and b"permission_denied" in body, body
    request = runs.SignalEventRequest(
        action_id=action_id(unique_name(), "approve"), payload=runs.EventPayload(bool_value=True)
    )
    status, _, body = post_proto_gzip(stack, request, path=SIGNAL, headers=stack.user_headers())
    assert status == 404, body
    assert (
        post(stack, gzip.compress(b"\xff"), {"Content-Type": "application/proto", "Content-Encoding": "gzip"}, SIGNAL)[
            0
        ]
        == 400
    )
