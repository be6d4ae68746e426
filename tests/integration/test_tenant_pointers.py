"""Stored pointers stay within the request's own project and domain (issue 22): Enqueue's
``input_uri`` and ``run_output_base``, RecordAction's ``input_uri`` and RecordActionEvents'
``log_context``, against moto, with update_action's service built as its handler builds it.
Each refusal is ``invalid_argument`` and writes nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from flyteidl2.common.phase_pb2 import ACTION_PHASE_RUNNING
from flyteidl2.core import execution_pb2
from flyteidl2.workflow import internal_run_service_pb2 as internal
from flyteidl2.workflow import run_definition_pb2 as wf

from functions.create_run.service import CreateRunService
from functions.update_action.service import ActionLifecycleService
from runplane.aws.blobs import BlobStore
from runplane.connect.errors import Code
from runplane.flyte.data_scope import DataScope
from runplane.flyte.identifiers import ActionKey
from runplane.table.actions import ActionStore
from tests.builders import DOMAIN, PROJECT, action_id, child_task_action, create_run_request, resource_name, task_spec
from tests.conftest import unique_name
from tests.refusals import REFUSED, as_refusal

pytestmark = pytest.mark.integration

NAMESPACE = "flyte"


@pytest.fixture
def store(aws):
    return ActionStore(table_name=aws.table_name, blobs=BlobStore(), spec_prefix=f"s3://{aws.bucket}")


@pytest.fixture
def lifecycle(aws, store):
    # as functions/update_action/handler.py builds it
    return ActionLifecycleService(store=store, data=DataScope.of(data_bucket=aws.bucket), namespace=NAMESPACE)


@pytest.fixture
def run(aws, store) -> str:
    name = unique_name()
    CreateRunService(store=store, blobs=BlobStore(), storage_prefix=f"s3://{aws.bucket}").create_run(
        create_run_request(name)
    )
    return name


def refused(call, request) -> str:
    with pytest.raises(REFUSED) as refusal:
        call(request)
    error = as_refusal(refusal.value)
    assert error.code is Code.INVALID_ARGUMENT
    return error.message


def enqueue(aws, run: str, name: str, *, input_uri: str | None = None, run_output_base: str | None = None):
    request = child_task_action(run, name)
    request.action.input_uri = input_uri or f"s3://{aws.bucket}/{PROJECT}/{DOMAIN}/{run}/{name}/inputs.pb"
    request.action.run_output_base = run_output_base or f"s3://{aws.bucket}/{PROJECT}/{DOMAIN}/{run}/"
    return request


OUTSIDE = [
    "s3://{bucket}/other-project/{domain}/{run}/c1/inputs.pb",  # another project's prefix
    "s3://{bucket}/{project}/production/{run}/c1/inputs.pb",  # another domain's
    "s3://other-bucket/{project}/{domain}/{run}/c1/inputs.pb",  # outside the data bucket
    "s3://{bucket}/{project}/{domain}/../../other-project/{domain}/x",  # climbing out
    "s3://{bucket}/ab/other-project/{domain}/{run}/c1",  # behind a shard prefix, still B's
    "gs://{bucket}/{project}/{domain}/{run}/c1/inputs.pb",
]


@pytest.mark.parametrize("where", OUTSIDE)
@pytest.mark.parametrize("field", ["input_uri", "run_output_base"])
def test_enqueue_with_a_pointer_outside_its_project_is_refused_and_writes_nothing(
    aws, store, lifecycle, run, where, field
):
    uri = where.format(bucket=aws.bucket, project=PROJECT, domain=DOMAIN, run=run)
    message = refused(lifecycle.enqueue, enqueue(aws, run, "c1", **{field: uri}))
    assert f"action.{field}" in message
    assert store.get_action(ActionKey(PROJECT, DOMAIN, run, "c1")) is None


def test_enqueue_within_its_project_is_stored_with_or_without_a_shard(aws, store, lifecycle, run):
    lifecycle.enqueue(enqueue(aws, run, "c1"))
    sharded = f"s3://{aws.bucket}/q7/{PROJECT}/{DOMAIN}/{run}/c2/inputs.pb"
    lifecycle.enqueue(enqueue(aws, run, "c2", input_uri=sharded))
    assert store.get_action(ActionKey(PROJECT, DOMAIN, run, "c2")).inputs_uri == sharded


def test_record_action_with_inputs_outside_its_project_is_refused_and_writes_nothing(aws, store, lifecycle, run):
    request = internal.RecordActionRequest(
        action_id=action_id(run, "c9"),
        parent="a0",
        input_uri=f"s3://{aws.bucket}/other-project/{DOMAIN}/{run}/c9/inputs.pb",
        task=wf.TaskAction(spec=task_spec(name="child.task")),
    )
    request.task.id.name = "child.task"
    assert "input_uri" in refused(lifecycle.record_action, request)
    assert store.get_action(ActionKey(PROJECT, DOMAIN, run, "c9")) is None


@pytest.mark.parametrize(
    ("run_name", "action_name"), [("Bad_Run", "c1"), ("r" * 31, "c1"), ("{run}", "UPPER"), ("{run}", "x" * 31)]
)
def test_record_action_validates_run_and_action_names(lifecycle, run, run_name, action_name):
    request = internal.RecordActionRequest(
        action_id=action_id(run_name.format(run=run), action_name), task=wf.TaskAction(spec=task_spec(name="t"))
    )
    request.task.id.name = "t"
    refused(lifecycle.record_action, request)


def event_with(run: str, log_context: execution_pb2.LogContext) -> internal.RecordActionEventsRequest:
    event = wf.ActionEvent(id=action_id(run, "a0"), attempt=1, phase=ACTION_PHASE_RUNNING, version=1)
    event.updated_time.FromDatetime(datetime.now(UTC))
    event.log_context.CopyFrom(log_context)
    return internal.RecordActionEventsRequest(events=[event])


def pod_context(*, namespace: str, pod: str, primary: str | None = None) -> execution_pb2.LogContext:
    return execution_pb2.LogContext(
        primary_pod_name=primary or pod,
        pods=[execution_pb2.PodLogContext(namespace=namespace, pod_name=pod, primary_container_name=pod)],
    )


@pytest.mark.parametrize(
    "context",
    [
        lambda run: pod_context(namespace="kube-system", pod=f"{resource_name(run)}-0"),  # another namespace
        lambda run: pod_context(namespace=NAMESPACE, pod="coredns-7f89b7bc75-abcde"),  # not this action's pod
        lambda run: pod_context(namespace=NAMESPACE, pod=f"{resource_name('r-other')}-0"),  # another run's
        lambda run: pod_context(namespace=NAMESPACE, pod=f"{resource_name(run)}-0", primary="kube-proxy-x"),
    ],
)
def test_a_log_context_naming_another_namespace_or_pod_is_refused_and_writes_nothing(lifecycle, store, run, context):
    message = refused(lifecycle.record_action_events, event_with(run, context(run)))
    assert "events[0].log_context" in message
    assert store.list_events(ActionKey(PROJECT, DOMAIN, run, "a0")) == []


def test_a_log_context_of_the_actions_own_pod_is_stored(lifecycle, store, run):
    context = pod_context(namespace=NAMESPACE, pod=f"{resource_name(run)}-0")
    response = lifecycle.record_action_events(event_with(run, context))
    assert response.status.code == 0
    assert len(store.list_events(ActionKey(PROJECT, DOMAIN, run, "a0"))) == 1
