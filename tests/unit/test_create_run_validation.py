"""CreateRun rejects bad requests before any side effect (no store or bucket call at all)."""

import pytest
from flyteidl2.common.identifier_pb2 import RunIdentifier
from flyteidl2.task.task_definition_pb2 import TaskIdentifier
from flyteidl2.workflow.run_service_pb2 import CreateRunRequest

from functions.create_run.service import CreateRunService, request_digest
from runplane.connect.errors import Code, ConnectError
from tests.builders import create_run_request, task_spec
from tests.refusals import REFUSED, as_refusal


class UntouchableStore:
    """Stands in for the store and the bucket: validation must fail before reaching either."""

    def __getattr__(self, name):
        raise AssertionError(f"{name} called for a request that should have been rejected")


def service():
    return CreateRunService(store=UntouchableStore(), blobs=UntouchableStore(), storage_prefix="s3://b")


def rejected(request) -> ConnectError:
    with pytest.raises(REFUSED) as info:
        service().create_run(request)
    return as_refusal(info.value)


@pytest.mark.parametrize("name", ["My-Run", "run_1", "a" * 31, ""])
def test_invalid_run_names(name):
    assert rejected(create_run_request(name)).code is Code.INVALID_ARGUMENT


def test_missing_run_identifier():
    request = create_run_request("r1")
    request.ClearField("run_id")
    error = rejected(request)
    assert error.code is Code.INVALID_ARGUMENT and "run_id or a project_id" in error.message


@pytest.mark.parametrize("field", ["project", "domain"])
def test_missing_scope(field):
    request = create_run_request("r1")
    setattr(request.run_id, field, "")
    assert rejected(request).code is Code.INVALID_ARGUMENT


def test_missing_task():
    request = create_run_request("r1")
    request.ClearField("task_spec")
    assert rejected(request).code is Code.INVALID_ARGUMENT


def test_task_without_type():
    assert rejected(create_run_request("r1", spec=task_spec(task_type=""))).code is Code.INVALID_ARGUMENT


def test_unknown_task_reference_is_not_found():
    request = CreateRunRequest(
        run_id=RunIdentifier(project="p", domain="d", name="r1"),
        task_id=TaskIdentifier(project="p", domain="d", name="t", version="v"),
    )
    assert rejected(request).code is Code.NOT_FOUND


def test_out_of_range_source():
    request = create_run_request("r1")
    request.source = 99
    assert rejected(request).code is Code.INVALID_ARGUMENT


def test_request_digest_ignores_org_and_codec():
    from google.protobuf import json_format

    a = create_run_request("r1")
    b = create_run_request("r1")
    b.run_id.org = "another-org"
    from_json = json_format.Parse(json_format.MessageToJson(a), CreateRunRequest())
    assert request_digest(a) == request_digest(b) == request_digest(from_json)
    c = create_run_request("r1")
    c.inputs.literals[0].value.scalar.primitive.integer = 22
    assert request_digest(c) != request_digest(a)
