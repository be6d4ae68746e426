"""What the flyte SDK inside a parent task calls, over HTTP through the local front: the watches
of its children (ActionsService/WatchForUpdates, StateService/Watch) as buffered Connect server
streams, QueueService/EnqueueAction and EventsProxyService/Record."""

from __future__ import annotations

import gzip
import json
import struct
import threading
import time
import urllib.error
import urllib.request

import pytest
from flyteidl2.actions import actions_service_pb2 as actions
from flyteidl2.common.identifier_pb2 import RunIdentifier
from flyteidl2.workflow import events_proxy_service_pb2 as events_proxy
from flyteidl2.workflow import internal_run_service_pb2 as internal
from flyteidl2.workflow import queue_service_pb2 as queue
from flyteidl2.workflow import run_definition_pb2 as wf
from flyteidl2.workflow import run_service_pb2 as runs
from flyteidl2.workflow import state_service_pb2 as state
from google.protobuf import json_format

from runplane.flyte import phases
from runplane.flyte.identifiers import ActionKey
from runplane.flyte.output_paths import action_output_path
from runplane.table.actions import ActionStore
from tests.builders import DOMAIN, PROJECT, action_id, child_task_action, create_run_request, resource_name
from tests.conftest import NAMESPACE, unique_name, wait_for
from tests.e2e.test_create_run_http import post, post_json, post_proto_gzip

pytestmark = pytest.mark.e2e

WATCH_FOR_UPDATES = "/flyteidl2.actions.ActionsService/WatchForUpdates"
STATE_WATCH = "/flyteidl2.workflow.StateService/Watch"
QUEUE = "/flyteidl2.workflow.QueueService"
RECORD = "/flyteidl2.workflow.EventsProxyService/Record"
INTERNAL = "/flyteidl2.workflow.InternalRunService"
RUNS = "/flyteidl2.workflow.RunService"
SDK_CHILD_NAME = "5cq9izcd1cvm7e1owrgfz8s6t"


@pytest.fixture
def store(stack):
    return ActionStore(table_name=stack.aws.table_name)


def key(run: str, name: str = "a0") -> ActionKey:
    return ActionKey(project=PROJECT, domain=DOMAIN, run=run, name=name)


def watch(stack, path, request, response_type, *, codec="proto"):
    """One stream as the SDK's Connect client sends and reads it: the frames' messages, and the
    end-of-stream JSON."""
    if codec == "proto":
        payload = gzip.compress(request.SerializeToString())
        headers = {
            "Content-Type": "application/connect+proto",
            "Connect-Content-Encoding": "gzip",
            "Connect-Protocol-Version": "1",
        }
        flags = 1
    else:
        payload = json_format.MessageToJson(request).encode()
        headers = {"Content-Type": "application/connect+json", "Connect-Protocol-Version": "1"}
        flags = 0
    status, response_headers, body = post(stack, struct.pack(">BI", flags, len(payload)) + payload, headers, path)
    assert status == 200 and response_headers["content-type"] == f"application/connect+{codec}"
    messages, end = [], None
    while body:
        frame_flags, length = struct.unpack(">BI", body[:5])
        data, body = body[5 : 5 + length], body[5 + length :]
        if frame_flags & 2:
            end = json.loads(data)
        elif codec == "proto":
            messages.append(response_type.FromString(data))
        else:
            messages.append(json_format.Parse(data, response_type()))
    assert end is not None and not body
    return messages, end


def summary(messages):
    return [
        "sentinel"
        if m.WhichOneof("message") == "control_message"
        else (m.action_update.action_id.name, m.action_update.phase)
        for m in messages
    ]


def update_status(stack, run, name, phase, attempts=1):
    status, _, body = post_proto_gzip(
        stack,
        internal.UpdateActionStatusRequest(
            action_id=action_id(run, name), status=wf.ActionStatus(phase=phase, attempts=attempts)
        ),
        f"{INTERNAL}/UpdateActionStatus",
    )
    assert status == 200 and internal.UpdateActionStatusResponse.FromString(body).status.code == 0


def sdk_enqueue_action(run, name=SDK_CHILD_NAME):
    """QueueService/EnqueueAction as the SDK's _bg_launch builds it (no group: None)."""
    enqueue = child_task_action(run, name)
    action = enqueue.action
    action.task.spec.task_template.id.project, action.task.spec.task_template.id.domain = PROJECT, DOMAIN
    return queue.EnqueueActionRequest(
        action_id=action.action_id,
        parent_action_name="a0",
        input_uri=f"s3://flyte-data/{PROJECT}/{DOMAIN}/{run}/{name}/inputs.pb",
        run_output_base=f"s3://flyte-data/{PROJECT}/{DOMAIN}/{run}",
        task=action.task,
    )


def new_run_with_child(stack, child="c1"):
    """A run whose root runs (as its data plane reports once a child starts; set here, so that no
    report arriving during a watch changes it) with one queued child."""
    run = unique_name()
    assert post_proto_gzip(stack, create_run_request(run))[0] == 200
    status, _, body = post_proto_gzip(stack, child_task_action(run, child), "/flyteidl2.actions.ActionsService/Enqueue")
    assert status == 200, body
    update_status(stack, run, "a0", phases.RUNNING)
    return run


# --- the watches -------------------------------------------------------------------------------


def test_watch_for_updates_sends_the_family_then_the_sentinel_then_a_change(stack):
    run = new_run_with_child(stack)
    request = actions.WatchForUpdatesRequest(parent_action_id=action_id(run, "a0"))

    started = time.monotonic()
    messages, end = watch(stack, WATCH_FOR_UPDATES, request, actions.WatchForUpdatesResponse)
    assert end == {} and time.monotonic() - started >= 1.5  # no change: the whole 2 s window
    assert summary(messages) == [("a0", phases.RUNNING), ("c1", phases.QUEUED), "sentinel"]
    child = messages[1].action_update
    assert child.output_uri == action_output_path(
        namespace=NAMESPACE,
        project=PROJECT,
        domain=DOMAIN,
        run=run,
        action="c1",
        run_output_base=f"s3://flyte-data/{PROJECT}/{DOMAIN}/{run}/",
        attempt=1,
    )
    assert messages[0].action_update.output_uri.startswith("s3://flyte-data/")

    updater = threading.Timer(0.5, update_status, (stack, run, "c1", phases.RUNNING))
    updater.start()
    messages, end = watch(stack, WATCH_FOR_UPDATES, request, actions.WatchForUpdatesResponse)
    updater.join()
    assert end == {}
    assert summary(messages) == [("a0", phases.RUNNING), ("c1", phases.QUEUED), "sentinel", ("c1", phases.RUNNING)]


def test_state_service_watch_in_json_and_a_reconnect_misses_nothing(stack):
    run = new_run_with_child(stack)
    request = state.WatchRequest(parent_action_id=action_id(run, "a0"))
    updater = threading.Timer(0.5, update_status, (stack, run, "c1", phases.RUNNING))
    updater.start()
    messages, end = watch(stack, STATE_WATCH, request, state.WatchResponse, codec="json")
    updater.join()
    assert end == {} and summary(messages) == [
        ("a0", phases.RUNNING),
        ("c1", phases.QUEUED),
        "sentinel",
        ("c1", phases.RUNNING),
    ]

    # between two streams (the SDK reconnects a second later) the child ends, and a new one starts
    update_status(stack, run, "c1", phases.SUCCEEDED)
    assert post_proto_gzip(stack, sdk_enqueue_action(run, "c2"), f"{QUEUE}/EnqueueAction")[0] == 200
    messages, end = watch(stack, STATE_WATCH, request, state.WatchResponse)
    assert end == {}
    assert summary(messages)[:4] == [
        ("a0", phases.RUNNING),
        ("c1", phases.SUCCEEDED),
        ("c2", phases.QUEUED),
        "sentinel",
    ]


def test_a_failed_child_is_sent_with_its_error_and_an_ended_parent_at_once(stack, store):
    run = new_run_with_child(stack)
    assert store.fail_action(key(run, "c1"), message="boom", kind="KIND_USER")
    update_status(stack, run, "a0", phases.FAILED)
    started = time.monotonic()
    messages, end = watch(
        stack,
        WATCH_FOR_UPDATES,
        actions.WatchForUpdatesRequest(parent_action_id=action_id(run, "a0")),
        actions.WatchForUpdatesResponse,
    )
    assert time.monotonic() - started < 1.5  # the parent ended: no waiting for changes
    assert end == {} and summary(messages) == [("a0", phases.FAILED), ("c1", phases.FAILED), "sentinel"]
    error = messages[1].action_update.error
    assert (error.message, error.kind) == ("boom", error.USER)


def test_a_missing_parent_is_not_found_in_the_end_frame(stack):
    run = new_run_with_child(stack)
    for path, request, response_type in (
        (
            WATCH_FOR_UPDATES,
            actions.WatchForUpdatesRequest(parent_action_id=action_id(run, "nope")),
            actions.WatchForUpdatesResponse,
        ),
        (STATE_WATCH, state.WatchRequest(parent_action_id=action_id(unique_name(), "a0")), state.WatchResponse),
    ):
        messages, end = watch(stack, path, request, response_type)
        assert messages == [] and end["error"]["code"] == "not_found"
    messages, end = watch(stack, STATE_WATCH, state.WatchRequest(), state.WatchResponse, codec="json")
    assert messages == [] and end["error"]["code"] == "invalid_argument"


# --- QueueService ------------------------------------------------------------------------------


def test_enqueue_action_creates_a_child_that_becomes_a_taskaction(stack, store, get_taskaction):
    run = unique_name()
    assert post_proto_gzip(stack, create_run_request(run))[0] == 200
    request = sdk_enqueue_action(run)
    for _ in range(2):  # the same again is OK
        status, _, body = post_proto_gzip(stack, request, f"{QUEUE}/EnqueueAction")
        assert status == 200 and queue.EnqueueActionResponse.FromString(body) == queue.EnqueueActionResponse()
    child = store.get_action(key(run, SDK_CHILD_NAME))
    assert child.parent == "a0" and child.phase == phases.QUEUED and child.run_output_base.endswith(f"/{run}")
    resource = wait_for(
        lambda: get_taskaction(resource_name(run, SDK_CHILD_NAME)), timeout=20, what="the child's TaskAction"
    )
    assert resource["spec"]["actionName"] == SDK_CHILD_NAME and resource["spec"]["parentActionName"] == "a0"

    request.group = "another"
    status, _, body = post_proto_gzip(stack, request, f"{QUEUE}/EnqueueAction")
    assert status == 409 and json.loads(body)["code"] == "already_exists"

    status, _, body = post_json(
        stack,
        queue.AbortQueuedActionRequest(action_id=action_id(run, SDK_CHILD_NAME), reason="stop"),
        f"{QUEUE}/AbortQueuedAction",
    )
    assert status == 200 and json.loads(body) == {}
    assert store.get_action(key(run, SDK_CHILD_NAME)).phase == phases.ABORTED
    status, _, body = post_json(
        stack,
        queue.AbortQueuedRunRequest(run_id=RunIdentifier(project=PROJECT, domain=DOMAIN, name=run)),
        f"{QUEUE}/AbortQueuedRun",
    )
    assert status == 200 and store.get_action(key(run)).phase == phases.ABORTED


# --- EventsProxyService ------------------------------------------------------------------------


def test_record_events_shows_in_the_attempts_and_a_bad_event_is_refused_alone(stack, store):
    run = unique_name()
    assert post_proto_gzip(stack, create_run_request(run))[0] == 200
    running = wf.ActionEvent(id=action_id(run, "a0"), attempt=1, phase=phases.RUNNING, version=0)
    running.updated_time.FromSeconds(1_700_000_000)
    status, _, body = post_proto_gzip(stack, events_proxy.RecordRequest(events=[running]), RECORD)
    assert status == 200 and events_proxy.RecordResponse.FromString(body) == events_proxy.RecordResponse()
    status, _, body = post_json(stack, events_proxy.RecordRequest(), RECORD)  # Flyte: events min_items = 1
    assert status == 400 and json.loads(body)["code"] == "invalid_argument" and "events" in json.loads(body)["message"]

    status, _, body = post_proto_gzip(
        stack, runs.GetActionDetailsRequest(action_id=action_id(run, "a0")), f"{RUNS}/GetActionDetails"
    )
    assert status == 200
    attempts = runs.GetActionDetailsResponse.FromString(body).details.attempts
    assert [(a.attempt, a.phase) for a in attempts] == [(1, phases.RUNNING)]

    other = unique_name()
    assert post_proto_gzip(stack, create_run_request(other))[0] == 200
    good = {
        "id": {"run": {"project": PROJECT, "domain": DOMAIN, "name": other}, "name": "a0"},
        "attempt": 1,
        "phase": "ACTION_PHASE_RUNNING",
    }
    for bad, field in (
        ({k: v for k, v in good.items() if k != "id"}, "events[1].id"),
        ({**good, "attempt": 0}, "events[1].attempt"),
        ({**good, "phase": 42}, "events[1].phase"),
    ):
        status, headers, body = post(
            stack, json.dumps({"events": [good, bad]}).encode(), {"Content-Type": "application/json"}, RECORD
        )
        assert status == 200 and json.loads(body) == {}, body
        refused = json.loads({k.lower(): v for k, v in headers.items()}["x-flyte-refused-events"])
        assert refused["count"] == 1 and refused["refused"][0]["index"] == 1, refused
        assert field in refused["refused"][0]["message"], refused
    # the good event of each batch is written (once: the later batches replay it), the bad ones never
    assert [(e.attempt, e.phase) for e in store.list_events(key(other))] == [(1, phases.RUNNING)]


# --- the events relay ----------------------------------------------------------------------------

CACHE_GET = "/flyteidl2.cacheservice.v2.CacheService/Get"


def _to_relay(stack, path: str, body: bytes, *, method: str = "POST", headers: dict[str, str] | None = None):
    request = urllib.request.Request(
        stack.events_endpoint + path,
        data=body if method == "POST" else None,
        method=method,
        headers={"Content-Type": "application/proto", "Connect-Protocol-Version": "1", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, response.read()  # names case-insensitive
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def test_the_relay_records_the_executors_unauthenticated_events_with_its_own_token(stack, store):
    """What Flyte's executor does: a Record call without credentials, to the relay. With the front
    enforcing its authorizers, the same call straight to the API is a 401; through the relay it is
    written, the relay having logged in as the data-plane client."""
    run = unique_name()
    assert post_proto_gzip(stack, create_run_request(run))[0] == 200
    running = wf.ActionEvent(id=action_id(run, "a0"), attempt=1, phase=phases.RUNNING, version=0)
    running.updated_time.FromSeconds(1_700_000_000)
    body = events_proxy.RecordRequest(events=[running]).SerializeToString()
    with stack.authentication():
        assert (
            post(stack, body, {"Content-Type": "application/proto", "Connect-Protocol-Version": "1"}, RECORD)[0] == 401
        )
        status, headers, answer = _to_relay(stack, RECORD, body, headers={"Authorization": "Bearer not-a-token"})
        assert status == 200, answer  # the caller's Authorization is dropped, the relay's token used
        assert events_proxy.RecordResponse.FromString(answer) == events_proxy.RecordResponse()
        assert headers["Content-Type"] == "application/proto"
    assert [(e.attempt, e.phase) for e in store.list_events(key(run))] == [(1, phases.RUNNING)]


def test_the_relay_forwards_the_executors_unauthenticated_cache_get_with_its_own_token(stack):
    """Flyte's cache client is a plain http.DefaultClient too (cache_service/client.go): a Get
    without credentials is a 401 straight to the API, and answered by the service through the relay."""
    from flyteidl2.cacheservice import cacheservice_pb2 as cache_base
    from flyteidl2.cacheservice.v2 import cacheservice_pb2 as cache_v2

    get = cache_v2.GetCacheRequest(
        base_request=cache_base.GetCacheRequest(key=unique_name("key")),
        identifier=cache_v2.Identifier(org="testorg", project=PROJECT, domain=DOMAIN),
    ).SerializeToString()
    with stack.authentication():
        headers = {"Content-Type": "application/proto", "Connect-Protocol-Version": "1"}
        assert post(stack, get, headers, CACHE_GET)[0] == 401
        status, _, answer = _to_relay(stack, CACHE_GET, get)
    assert (status, json.loads(answer)["code"]) == (404, "not_found"), answer  # a miss: the service answered


def test_the_relay_refuses_anything_but_record_without_calling_the_api(stack):
    forwarded = stack.relay.relay.forwarded
    for path in (
        f"{RUNS}/CreateRun",
        f"{INTERNAL}/RecordActionEvents",
        "/flyteidl2.cacheservice.v2.CacheService/Delete",
        "/",
    ):
        status, headers, body = _to_relay(stack, path, b"")
        assert (status, json.loads(body)["code"]) == (404, "not_found"), path
        assert headers["Content-Type"] == "application/json"
    status, headers, body = _to_relay(stack, RECORD, b"", method="GET")
    assert (status, json.loads(body)["code"], headers["Allow"]) == (405, "unimplemented", "POST")
    limit, stack.relay.relay.max_body_bytes = stack.relay.relay.max_body_bytes, 1024  # a small limit, for the test
    try:
        status, _, body = _to_relay(stack, RECORD, b"\0" * 1025)
    finally:
        stack.relay.relay.max_body_bytes = limit
    assert (status, json.loads(body)["code"]) == (413, "resource_exhausted")
    assert stack.relay.relay.forwarded == forwarded
