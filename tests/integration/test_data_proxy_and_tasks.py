"""The data proxy and the task registry against moto: signed uploads, offloaded inputs, outputs
where Flyte's executor writes them, deploys, and the bad input around them."""

from __future__ import annotations

import hashlib

import httpx
import pytest
from flyteidl2.common.identifier_pb2 import ProjectIdentifier
from flyteidl2.dataproxy import dataproxy_service_pb2 as proxy
from flyteidl2.task import common_pb2
from flyteidl2.task import task_definition_pb2 as td
from flyteidl2.task import task_service_pb2 as ts
from google.protobuf.duration_pb2 import Duration

from functions.create_run.service import CreateRunService
from functions.data_proxy.service import MAX_UPLOAD_BYTES, DataProxy
from functions.task_registry.service import TaskRegistry
from runplane.aws.blobs import BlobStore
from runplane.connect.errors import Code
from runplane.connect.pages import PageTokens
from runplane.table.tasks import TaskStore
from tests.builders import DOMAIN, PROJECT, action_id, create_run_request, integer_inputs, task_spec
from tests.conftest import unique_name
from tests.refusals import REFUSED, code_of

pytestmark = pytest.mark.integration


@pytest.fixture
def data_proxy(aws, store):
    return DataProxy(store=store, blobs=BlobStore(), bucket=aws.bucket)


@pytest.fixture
def registry(store):
    return TaskRegistry(tasks=TaskStore(store), tokens=PageTokens(secret=b"t"))


def upload_request(content: bytes, **fields) -> proxy.CreateUploadLocationRequest:
    return proxy.CreateUploadLocationRequest(
        project=PROJECT, domain=DOMAIN, filename="bundle.tar.gz", content_md5=hashlib.md5(content).digest(), **fields
    )


def test_a_signed_upload_takes_exactly_the_announced_content(data_proxy, aws):
    content = b"code bundle" * 100
    location = data_proxy.create_upload_location(upload_request(content, expires_in=Duration(seconds=600)))
    assert location.native_url.startswith(f"s3://{aws.bucket}/{PROJECT}/{DOMAIN}/")
    put = httpx.put(location.signed_url, content=content, headers=dict(location.headers))
    assert put.status_code == 200
    assert BlobStore().get(location.native_url) == content

    tampered = httpx.put(location.signed_url, content=content + b"!", headers=dict(location.headers))
    assert tampered.status_code >= 400  # S3 checks the body against the signed MD5
    assert BlobStore().get(location.native_url) == content


def test_an_upload_under_a_chosen_name_is_write_once(data_proxy, aws):
    """Flyte's checkFileExists: the same content may be uploaded again, other content is refused."""
    root = unique_name("bundle")
    content = b"first bundle"
    location = data_proxy.create_upload_location(upload_request(content, filename_root=root))
    assert httpx.put(location.signed_url, content=content, headers=dict(location.headers)).status_code == 200
    again = data_proxy.create_upload_location(upload_request(content, filename_root=root))  # unchanged code
    assert again.native_url == location.native_url
    with pytest.raises(REFUSED) as info:
        data_proxy.create_upload_location(upload_request(b"replaced", filename_root=root))
    assert code_of(info.value) is Code.ALREADY_EXISTS
    assert BlobStore().get(location.native_url) == content


@pytest.mark.parametrize(
    "fields",
    [
        {"filename_root": "../other-project"},
        {"filename": "../../escape"},
        {"filename": "a/b"},
        {"project": "other project"},
        {"content_length": MAX_UPLOAD_BYTES + 1},
        {"expires_in": Duration(seconds=8 * 24 * 3600)},
        {"content_md5": b"short"},
    ],
)
def test_bad_upload_requests_are_invalid_argument(data_proxy, fields):
    request = upload_request(b"x")
    for name, value in fields.items():
        if name == "expires_in":
            request.expires_in.CopyFrom(value)
        else:
            setattr(request, name, value)
    with pytest.raises(REFUSED) as info:
        data_proxy.create_upload_location(request)
    assert code_of(info.value) is Code.INVALID_ARGUMENT


def test_uploaded_inputs_become_a_run_and_are_read_back(data_proxy, store, aws):
    uploaded = data_proxy.upload_inputs(
        proxy.UploadInputsRequest(
            project_id=ProjectIdentifier(name=PROJECT, domain=DOMAIN), inputs=integer_inputs(x=21)
        )
    ).offloaded_input_data
    assert uploaded.uri.startswith(f"s3://{aws.bucket}/{PROJECT}/{DOMAIN}/offloaded-inputs/")
    name = unique_name()
    request = create_run_request(name)
    request.offloaded_input_data.CopyFrom(uploaded)
    CreateRunService(store=store, blobs=BlobStore(), storage_prefix=f"s3://{aws.bucket}").create_run(request)

    data = data_proxy.get_action_data(proxy.GetActionDataRequest(action_id=action_id(name, "a0")))
    assert data.inputs == integer_inputs(x=21)
    assert data.outputs == common_pb2.Outputs() and data.outputs_uri.endswith("/a0/1/outputs.pb")

    outputs = common_pb2.Outputs(literals=[integer_inputs(o0=42).literals[0]])
    BlobStore().put(data.outputs_uri, outputs.SerializeToString())
    assert data_proxy.get_action_data(proxy.GetActionDataRequest(action_id=action_id(name, "a0"))).outputs == outputs


def test_action_data_of_a_missing_action_is_not_found(data_proxy):
    with pytest.raises(REFUSED) as info:
        data_proxy.get_action_data(proxy.GetActionDataRequest(action_id=action_id(unique_name(), "a0")))
    assert code_of(info.value) is Code.NOT_FOUND


def deploy(registry, name, version, spec=None):
    task_id = td.TaskIdentifier(project=PROJECT, domain=DOMAIN, name=name, version=version)
    registry.deploy_task(ts.DeployTaskRequest(task_id=task_id, spec=spec or task_spec(name=name)))
    return task_id


def test_deploys_are_idempotent_per_version_and_immutable(registry):
    name = f"{unique_name()}.task"
    task_id = deploy(registry, name, "v1")
    deploy(registry, name, "v1")
    with pytest.raises(REFUSED) as info:
        deploy(registry, name, "v1", spec=task_spec(name=name, args=("other",)))
    assert code_of(info.value) is Code.ALREADY_EXISTS
    details = registry.get_task_details(ts.GetTaskDetailsRequest(task_id=task_id)).details
    assert details.spec == task_spec(name=name) and details.task_id.version == "v1"


def test_list_tasks_finds_the_latest_version(registry):
    name = f"{unique_name()}.task"
    for version in ("v1", "v2", "v3"):
        deploy(registry, name, version)
    from flyteidl2.common import list_pb2

    request = ts.ListTasksRequest(
        project_id=ProjectIdentifier(name=PROJECT, domain=DOMAIN),
        request=list_pb2.ListRequest(
            limit=1,
            filters=[list_pb2.Filter(function=list_pb2.Filter.EQUAL, field="name", values=[name])],
            sort_by=list_pb2.Sort(key="created_at", direction=list_pb2.Sort.DESCENDING),
        ),
    )
    response = registry.list_tasks(request)
    # one row per task name, its latest version (Flyte's ListTasks): no page follows
    assert [t.task_id.version for t in response.tasks] == ["v3"] and not response.token


def test_runs_of_a_deployed_task_and_of_an_unknown_one(registry, store, aws):
    name = f"{unique_name()}.task"
    task_id = deploy(registry, name, "v1")
    creator = CreateRunService(
        store=store, blobs=BlobStore(), storage_prefix=f"s3://{aws.bucket}", tasks=TaskStore(store)
    )
    request = create_run_request(unique_name())
    request.task_id.CopyFrom(task_id)
    assert creator.create_run(request).run.action.metadata.task.id.name == name

    request = create_run_request(unique_name())
    request.task_id.CopyFrom(td.TaskIdentifier(project=PROJECT, domain=DOMAIN, name=name, version="nope"))
    with pytest.raises(REFUSED) as info:
        creator.create_run(request)
    assert code_of(info.value) is Code.NOT_FOUND
