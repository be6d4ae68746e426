"""reconcile against the real control plane (Flyte's CRD validates every body) and moto."""

from __future__ import annotations

import boto3
import pytest
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from flyteidl2.task import run_pb2

from functions.create_run.service import CreateRunService
from functions.reconcile.reconciler import ActionChange, Outcome, Reconciler
from local_stack.aws import provision
from local_stack.stream_poller import StreamPoller
from runplane.aws.blobs import BlobStore
from runplane.flyte import phases
from runplane.flyte.identifiers import RunKey
from runplane.table.actions import ActionStore
from tests.builders import DOMAIN, PROJECT, create_run_request, resource_name
from tests.conftest import NAMESPACE, unique_name

pytestmark = pytest.mark.integration


@pytest.fixture
def create_run(aws, store):
    service = CreateRunService(store=store, blobs=BlobStore(), storage_prefix=f"s3://{aws.bucket}")

    def create(name: str, **options):
        service.create_run(create_run_request(name, **options))
        return store.get_action(RunKey(options.get("project", PROJECT), DOMAIN, name).action("a0"))

    return create


@pytest.fixture
def reconciler(cluster, store):
    return Reconciler(cluster=cluster, store=store)


def test_root_becomes_a_valid_taskaction_once(create_run, reconciler, get_taskaction):
    name = unique_name()
    record = create_run(name)

    assert reconciler.materialise(record) is Outcome.CREATED
    resource = get_taskaction(resource_name(name))
    assert resource["metadata"]["labels"]["flyte.org/run"] == name
    assert resource["spec"]["runName"] == name and resource["spec"]["actionName"] == "a0"
    assert resource["spec"]["inputUri"] and resource["spec"]["runOutputBase"] and resource["spec"]["taskTemplate"]

    assert reconciler.materialise(record) is Outcome.ALREADY_PRESENT
    assert get_taskaction(resource_name(name))["metadata"]["uid"] == resource["metadata"]["uid"]


def test_same_run_name_in_another_project_gets_its_own_resource(create_run, reconciler, store, get_taskaction):
    """Squatting: a run named as another project's next run (a scheduled name, say) no longer
    takes that project's TaskAction name: the name carries the project and domain (issue 22)."""
    name = unique_name()
    first = create_run(name, project="team-a")
    second = create_run(name, project="team-b")
    assert reconciler.materialise(first) is Outcome.CREATED
    assert reconciler.materialise(second) is Outcome.CREATED

    for project, record in (("team-a", first), ("team-b", second)):
        resource = get_taskaction(resource_name(name, project=project))
        assert resource["metadata"]["labels"]["flyte.org/project"] == project
        assert store.get_action(record.key).phase == phases.QUEUED
    assert resource_name(name, project="team-a") != resource_name(name, project="team-b")


def test_a_resource_the_api_server_rejects_fails_the_action(create_run, reconciler, store, get_taskaction):
    name = unique_name()
    record = create_run(name, run_spec=run_pb2.RunSpec(labels=run_pb2.Labels(values={"team": "not a valid label!"})))

    assert reconciler.materialise(record) is Outcome.REJECTED

    failed = store.get_action(record.key)
    assert failed.phase == phases.FAILED and "rejected" in failed.error_message
    assert get_taskaction(resource_name(name)) is None


def test_replaying_the_whole_stream_changes_nothing(moto_server, cluster, custom_objects):
    table = provision(endpoint=moto_server.endpoint, table_name=unique_name("tbl"), bucket="replay-data")
    store = ActionStore(table_name=table.table_name)
    service = CreateRunService(store=store, blobs=BlobStore(), storage_prefix="s3://replay-data")
    names = [unique_name() for _ in range(3)]
    for name in names:
        service.create_run(create_run_request(name))
    reconciler = Reconciler(cluster=cluster, store=store)
    processor = BatchProcessor(event_type=EventType.DynamoDBStreams)
    outcomes: list[str] = []

    def handler(event, context):
        def record_handler(record):
            outcomes.append(reconciler.handle(ActionChange.from_stream_record(record.raw_event)).value)

        return process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )

    def snapshot():
        resources = custom_objects.list_namespaced_custom_object(
            "flyte.org", "v1", NAMESPACE, "taskactions", label_selector=f"flyte.org/run in ({','.join(names)})"
        )["items"]
        records = [store.get_action(RunKey(PROJECT, DOMAIN, n).action("a0")) for n in names]
        return sorted(
            (r["metadata"]["name"], r["metadata"]["uid"], r["metadata"]["resourceVersion"]) for r in resources
        ), records

    streams = boto3.client("dynamodbstreams")
    StreamPoller(streams_client=streams, stream_arn=table.stream_arn, handler=handler).drain()
    first = snapshot()
    assert outcomes == ["created"] * 3 and len(first[0]) == 3

    for _ in range(2):  # a fresh poller starts at TRIM_HORIZON: the whole stream again
        StreamPoller(streams_client=streams, stream_arn=table.stream_arn, handler=handler).drain()
    assert snapshot() == first
    assert outcomes[3:] == ["already_present"] * 6


def test_the_states_reconcile_decides_on_are_the_phase_and_a_pending_abort(create_run, store):
    queued, aborted = create_run(unique_name()), create_run(unique_name())
    store.request_abort(aborted.key, reason="stop")
    missing = RunKey(PROJECT, DOMAIN, unique_name()).action("a0")

    states = store.get_action_states([queued.key, aborted.key, missing, queued.key])

    assert set(states) == {queued.key, aborted.key}
    assert states[queued.key].phase == phases.QUEUED and states[queued.key].abort_requested_at is None
    stored = store.get_action(aborted.key)
    assert states[aborted.key].phase == phases.ABORTED
    assert states[aborted.key].abort_requested_at == stored.abort_requested_at is not None
