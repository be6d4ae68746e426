"""End to end over HTTP: the local API front -> create_run -> DynamoDB -> stream -> reconcile ->
a TaskAction in the real control plane, valid under Flyte's CRD."""

from __future__ import annotations

import base64
import gzip
import json
import urllib.error
import urllib.request

import pytest
from flyteidl2.core.tasks_pb2 import TaskTemplate
from flyteidl2.task import run_pb2
from flyteidl2.workflow.run_service_pb2 import CreateRunResponse
from google.protobuf import json_format

from runplane.aws.run_tokens import RUN_TOKEN_ENV
from runplane.flyte.identifiers import RunKey
from runplane.table.actions import ActionStore
from tests.builders import DOMAIN, PROJECT, create_run_request, resource_name
from tests.conftest import unique_name, wait_for

pytestmark = pytest.mark.e2e

CREATE_RUN = "/flyteidl2.workflow.RunService/CreateRun"


def post(stack, body: bytes, headers: dict[str, str], path: str = CREATE_RUN) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(stack.endpoint + path, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def post_json(stack, message_or_text, path: str = CREATE_RUN):
    body = (
        message_or_text if isinstance(message_or_text, bytes) else json_format.MessageToJson(message_or_text).encode()
    )
    return post(stack, body, {"Content-Type": "application/json", "Connect-Protocol-Version": "1"}, path)


def post_proto_gzip(stack, message, path: str = CREATE_RUN, headers: dict[str, str] | None = None):
    # exactly what the flyte SDK sends: binary proto, gzip-compressed, Connect headers (and a token)
    return post(
        stack,
        gzip.compress(message.SerializeToString()),
        {
            "Content-Type": "application/proto",
            "Content-Encoding": "gzip",
            "Accept-Encoding": "gzip,identity",
            "Connect-Protocol-Version": "1",
            "User-Agent": "connectrpc/0.10.1",
            **(headers or {}),
        },
        path,
    )


@pytest.fixture
def store(stack):
    return ActionStore(table_name=stack.aws.table_name)


def assert_taskaction_for(name, get_taskaction, *, envs=None):
    resource = wait_for(lambda: get_taskaction(resource_name(name)), timeout=20, what=f"TaskAction {name}-a0")
    assert resource["metadata"]["labels"] == {
        "flyte.org/project": PROJECT,
        "flyte.org/domain": DOMAIN,
        "flyte.org/run": name,
        "flyte.org/action": "a0",
        "flyte.org/action-type": "task",
        "flyte.org/is-root": "true",
        "runplane/mirror-shard": "0",
        "app.kubernetes.io/managed-by": "runplane",
        **({"team": "ml"} if envs else {}),
    }
    spec = resource["spec"]
    assert (spec["project"], spec["domain"], spec["runName"], spec["actionName"]) == (PROJECT, DOMAIN, name, "a0")
    assert spec["inputUri"].startswith(f"s3://flyte-data/{PROJECT}/{DOMAIN}/{name}/inputs/")
    assert spec["runOutputBase"] == f"s3://flyte-data/{PROJECT}/{DOMAIN}/{name}/"
    assert spec["taskType"] == "python-task" and spec["shortName"] == "main"
    assert TaskTemplate.FromString(base64.b64decode(spec["taskTemplate"])).id.name == "hello.main"
    if envs:
        assert {k: v for k, v in spec["envVars"].items() if k != RUN_TOKEN_ENV} == envs  # and the run's token
    return resource


def test_json_create_run_materialises_a_taskaction(stack, get_taskaction):
    name = unique_name()
    run_spec = run_pb2.RunSpec(
        envs=run_pb2.Envs(values=[{"key": "STAGE", "value": "e2e"}]), labels=run_pb2.Labels(values={"team": "ml"})
    )
    status, headers, body = post_json(stack, create_run_request(name, run_spec=run_spec))
    assert status == 200, body
    assert headers["content-type"] == "application/json"
    run = json.loads(body)["run"]["action"]
    assert run["id"]["name"] == "a0" and run["status"]["phase"] == "ACTION_PHASE_QUEUED"
    assert_taskaction_for(name, get_taskaction, envs={"STAGE": "e2e"})


def test_gzip_binary_proto_create_run_materialises_a_taskaction(stack, get_taskaction):
    name = unique_name()
    status, headers, body = post_proto_gzip(stack, create_run_request(name))
    assert status == 200, body
    assert headers["content-type"] == "application/proto"
    response = CreateRunResponse.FromString(body)
    assert response.run.action.id.run.name == name
    assert_taskaction_for(name, get_taskaction)


def test_duplicate_delivery_returns_the_run_and_materialises_once(stack, get_taskaction, store):
    name = unique_name()
    request = create_run_request(name)
    first = post_proto_gzip(stack, request)
    resource = assert_taskaction_for(name, get_taskaction)
    second = post_proto_gzip(stack, request)
    assert first[0] == second[0] == 200 and first[2] == second[2]
    assert get_taskaction(resource_name(name))["metadata"]["uid"] == resource["metadata"]["uid"]

    other = create_run_request(name)
    other.inputs.literals[0].value.scalar.primitive.integer = 7
    status, _, body = post_proto_gzip(stack, other)
    assert status == 409 and json.loads(body)["code"] == "already_exists"


def test_project_id_gets_a_generated_run(stack, get_taskaction):
    status, _, body = post_json(stack, create_run_request(None))
    assert status == 200
    name = json.loads(body)["run"]["action"]["id"]["run"]["name"]
    assert_taskaction_for(name, get_taskaction)


BAD_REQUESTS = {
    "malformed json": (b'{"runId": ', "application/json", 400, "invalid_argument"),
    "malformed proto": (b"\x0a\xff\xff\xff", "application/proto", 400, "invalid_argument"),
    "unknown content type": (b"{}", "text/plain", 415, "invalid_argument"),
    "no run identifier": (
        b'{"taskSpec": {"taskTemplate": {"type": "python-task", "id": {"name": "t"}}}}',
        "application/json",
        400,
        "invalid_argument",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_bad_input_is_a_clear_4xx_connect_error(stack, case):
    body, content_type, expected_status, expected_code = BAD_REQUESTS[case]
    status, _, response = post(stack, body, {"Content-Type": content_type})
    assert status == expected_status
    assert json.loads(response)["code"] == expected_code


@pytest.mark.parametrize("bad_name", ["Bad_Name", "a" * 31, "1abc"])
def test_invalid_run_names_write_nothing(stack, store, get_taskaction, bad_name):
    status, _, body = post_json(stack, create_run_request(bad_name))
    assert status == 400 and json.loads(body)["code"] == "invalid_argument"
    assert store.get_action(RunKey(PROJECT, DOMAIN, bad_name).action("a0")) is None


def test_oversized_bodies_are_refused(stack):
    status, _, body = post(stack, b"x" * (5 * 1024 * 1024), {"Content-Type": "application/proto"})
    assert status == 400 and json.loads(body)["code"] == "invalid_argument"


def test_procedures_not_implemented_are_connect_unimplemented(stack):
    status, _, body = post_json(stack, b"{}", path="/flyteidl2.workflow.RunService/NoSuchMethod")
    assert status == 501 and json.loads(body)["code"] == "unimplemented"
