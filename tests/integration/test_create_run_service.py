"""CreateRun against moto: what is stored, where inputs go, and duplicate delivery."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from flyteidl2.common import phase_pb2
from flyteidl2.common.run_pb2 import OffloadedInputData
from flyteidl2.task import common_pb2, run_pb2
from flyteidl2.workflow import run_definition_pb2 as wf

from functions.create_run.service import CreateRunService
from runplane.aws.blobs import BlobStore
from runplane.connect.errors import Code
from runplane.flyte.identifiers import RunKey
from tests.builders import DOMAIN, PROJECT, create_run_request, integer_inputs
from tests.conftest import unique_name
from tests.refusals import REFUSED, code_of

pytestmark = pytest.mark.integration


@pytest.fixture
def store(inline_store):
    return inline_store  # specs stay on the item: these tests reach its size limit


@pytest.fixture
def blobs(aws):
    return BlobStore()


@pytest.fixture
def service(aws, store, blobs):
    return CreateRunService(store=store, blobs=blobs, storage_prefix=f"s3://{aws.bucket}")


def objects_under(blobs, bucket, prefix):
    import boto3  # a listing: not a call the functions make, so not one their S3 client has

    listing = boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix)
    return [o["Key"] for o in listing.get("Contents", [])]


def test_root_action_is_stored_queued_with_serialized_specs(service, store, blobs, aws):
    name = unique_name()
    response = service.create_run(create_run_request(name))

    action = response.run.action
    assert action.id.name == "a0" and action.id.run.name == name and action.id.run.org == ""
    assert action.status.phase == phase_pb2.ACTION_PHASE_QUEUED and action.status.attempts == 1
    assert action.metadata.source == wf.RUN_SOURCE_CLI
    assert action.metadata.task.id.name == "hello.main"

    record = store.get_action(RunKey(PROJECT, DOMAIN, name).action("a0"))
    assert record.phase == phase_pb2.ACTION_PHASE_QUEUED and record.parent is None
    assert record.action_type == wf.ACTION_TYPE_TASK and record.run_source == "RUN_SOURCE_CLI"
    spec = wf.ActionSpec.FromString(record.action_spec)
    assert spec.action_id.name == "a0" and spec.task.spec.task_template.type == "python-task"
    assert spec.run_output_base == f"s3://{aws.bucket}/{PROJECT}/{DOMAIN}/{name}/"
    assert spec.input_uri == record.inputs_uri and record.inputs_uri.endswith("/inputs.pb")
    run_spec = run_pb2.RunSpec.FromString(record.run_spec)
    assert run_spec.raw_data_storage.raw_data_prefix == f"s3://{aws.bucket}"

    stored_inputs = common_pb2.Inputs.FromString(blobs.get(record.inputs_uri))
    assert stored_inputs == integer_inputs(x=21)


def test_same_request_again_returns_the_run_and_writes_nothing(service, store, blobs, aws):
    name = unique_name()
    request = create_run_request(name)
    first = service.create_run(request)
    before = store.get_action(RunKey(PROJECT, DOMAIN, name).action("a0"))

    second = service.create_run(request)

    assert second == first
    after = store.get_action(RunKey(PROJECT, DOMAIN, name).action("a0"))
    assert after == before and after.version == 1
    assert len(objects_under(blobs, aws.bucket, f"{PROJECT}/{DOMAIN}/{name}/")) == 1


def test_different_request_for_an_existing_name_is_already_exists(service, blobs, aws):
    name = unique_name()
    service.create_run(create_run_request(name))
    with pytest.raises(REFUSED) as info:
        service.create_run(create_run_request(name, inputs=integer_inputs(x=99)))
    assert code_of(info.value) is Code.ALREADY_EXISTS
    # the live run's inputs are untouched (Flyte quirk Q5 rewrote them)
    assert len(objects_under(blobs, aws.bucket, f"{PROJECT}/{DOMAIN}/{name}/")) == 1


def test_concurrent_duplicates_create_one_run(service, store):
    name = unique_name()
    request = create_run_request(name)
    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(lambda _: service.create_run(request), range(8)))
    assert all(r == responses[0] for r in responses)
    assert store.get_action(RunKey(PROJECT, DOMAIN, name).action("a0")).version == 1


def test_project_id_generates_a_flyte_style_name(service):
    response = service.create_run(create_run_request(None))
    name = response.run.action.id.run.name
    assert len(name) == 20 and name.startswith("r")


def test_offloaded_inputs_are_referenced_not_copied(service, store, blobs, aws):
    name = unique_name()
    request = create_run_request(name)
    uri = f"s3://{aws.bucket}/{PROJECT}/{DOMAIN}/offloaded-inputs/abc"
    request.offloaded_input_data.CopyFrom(OffloadedInputData(uri=uri, inputs_hash="h"))
    service.create_run(request)
    record = store.get_action(RunKey(PROJECT, DOMAIN, name).action("a0"))
    assert record.inputs_uri == f"{uri}/inputs.pb"
    assert objects_under(blobs, aws.bucket, f"{PROJECT}/{DOMAIN}/{name}/") == []


@pytest.mark.parametrize(
    "where",
    [
        "s3://{bucket}/other-project/{domain}/offloaded-inputs/abc",  # another project's prefix
        "s3://{bucket}/{project}/production/offloaded-inputs/abc",  # another domain's
        "s3://elsewhere/{project}/{domain}/offloaded-inputs/abc",  # outside the data bucket
        "s3://{bucket}/{project}/{domain}/../../other-project/{domain}/x",  # climbing out
        "file:///etc/passwd",
    ],
)
def test_offloaded_inputs_outside_the_runs_project_are_refused_and_nothing_is_written(service, store, aws, where):
    name = unique_name()
    request = create_run_request(name)
    uri = where.format(bucket=aws.bucket, project=PROJECT, domain=DOMAIN)
    request.offloaded_input_data.CopyFrom(OffloadedInputData(uri=uri, inputs_hash="h"))
    with pytest.raises(REFUSED) as refusal:
        service.create_run(request)
    assert code_of(refusal.value) is Code.INVALID_ARGUMENT and "offloaded_input_data.uri" in refusal.value.message
    assert store.get_action(RunKey(PROJECT, DOMAIN, name).action("a0")) is None


def test_a_run_base_dir_outside_the_runs_project_is_refused_and_nothing_is_written(service, store, blobs, aws):
    name = unique_name()
    request = create_run_request(name)
    request.run_spec.run_base_dir = f"s3://{aws.bucket}/other-project/{DOMAIN}"
    with pytest.raises(REFUSED) as refusal:
        service.create_run(request)
    assert code_of(refusal.value) is Code.INVALID_ARGUMENT and "run_spec.run_base_dir" in refusal.value.message
    assert store.get_action(RunKey(PROJECT, DOMAIN, name).action("a0")) is None
    assert objects_under(blobs, aws.bucket, "other-project/") == []
    request.run_spec.run_base_dir = f"s3://{aws.bucket}/{PROJECT}/{DOMAIN}/custom"  # its own: fine
    assert service.create_run(request).run.action.id.run.name == name


@pytest.mark.parametrize("project", ["TASKS", "TRIGGERS"])
def test_a_project_named_like_a_registry_partition_is_refused_and_nothing_is_written(service, store, project):
    name = unique_name()
    with pytest.raises(REFUSED) as refusal:
        service.create_run(create_run_request(name, project=project))
    assert code_of(refusal.value) is Code.INVALID_ARGUMENT and "reserved" in refusal.value.message
    assert store.get_action(RunKey(project, DOMAIN, name).action("a0")) is None


def test_default_inputs_fill_only_missing_names(service, store, blobs):
    from flyteidl2.core import interface_pb2, literals_pb2

    from tests.builders import task_spec

    spec = task_spec()
    for input_name, value in (("x", 1), ("y", 2)):
        spec.default_inputs.append(
            common_pb2.NamedParameter(
                name=input_name,
                parameter=interface_pb2.Parameter(
                    default=literals_pb2.Literal(
                        scalar=literals_pb2.Scalar(primitive=literals_pb2.Primitive(integer=value))
                    )
                ),
            )
        )
    name = unique_name()
    service.create_run(create_run_request(name, spec=spec, inputs=integer_inputs(x=21)))
    record = store.get_action(RunKey(PROJECT, DOMAIN, name).action("a0"))
    stored = {
        literal.name: literal.value.scalar.primitive.integer
        for literal in common_pb2.Inputs.FromString(blobs.get(record.inputs_uri)).literals
    }
    assert stored == {"x": 21, "y": 2}


def test_a_run_too_large_for_an_item_is_invalid_argument_and_leaves_nothing(service, store, blobs, aws):
    from tests.builders import task_spec

    spec = task_spec()
    spec.task_template.container.args.append("x" * 420_000)  # large specs are offloaded in a later issue
    name = unique_name()
    with pytest.raises(REFUSED) as info:
        service.create_run(create_run_request(name, spec=spec))
    assert code_of(info.value) is Code.INVALID_ARGUMENT
    assert store.get_action(RunKey(PROJECT, DOMAIN, name).action("a0")) is None
    assert objects_under(blobs, aws.bucket, f"{PROJECT}/{DOMAIN}/{name}/") == []
