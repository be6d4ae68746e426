"""A token's ``projects`` claim against the projects a request names (runplane.connect.access),
and its place in the router: refused before the handler runs."""

from __future__ import annotations

import json

import pytest
from flyteidl2.common.identifier_pb2 import ProjectIdentifier, RunIdentifier
from flyteidl2.project import project_service_pb2 as project
from flyteidl2.task import task_definition_pb2
from flyteidl2.workflow import run_service_pb2

from runplane.connect.access import allowed_projects, check_project_access, named_projects
from runplane.connect.codec import HttpRequest
from runplane.connect.errors import Code
from runplane.connect.router import ConnectRouter
from tests.builders import create_run_request
from tests.refusals import REFUSED, code_of


@pytest.mark.parametrize(
    ("claim", "projects"),
    [
        ("[alpha beta]", {"alpha", "beta"}),  # an array, as payload 2.0 renders it
        ('["alpha","beta"]', {"alpha", "beta"}),  # an array as JSON text
        ("alpha beta", {"alpha", "beta"}),
        ("alpha,beta", {"alpha", "beta"}),
        ("alpha", {"alpha"}),
        ("[]", set()),
    ],
)
def test_the_claim_is_read_in_every_shape_it_arrives_in(claim, projects):
    assert allowed_projects({"projects": claim}) == projects


def test_a_token_without_the_claim_is_project_agnostic():
    assert allowed_projects({"sub": "x"}) is None
    check_project_access(create_run_request("r1"), {"sub": "x"})  # nothing raised


def test_every_project_a_request_names_is_found_at_any_depth():
    request = create_run_request("r1")  # run_id.project
    request.task_id.CopyFrom(task_definition_pb2.TaskIdentifier(project="shared", domain="d", name="t", version="v"))
    assert named_projects(request) == {"flytesnacks", "shared"}
    listing = run_service_pb2.ListRunsRequest(project_id=ProjectIdentifier(name="alpha", domain="d"))
    assert named_projects(listing) == {"alpha"}
    assert named_projects(project.GetProjectRequest(id="beta")) == {"beta"}
    assert named_projects(run_service_pb2.ListRunsRequest(org="o")) == set()


def test_a_request_outside_the_tokens_projects_or_naming_none_is_permission_denied():
    claims = {"projects": "[flytesnacks]"}
    check_project_access(create_run_request("r1"), claims)
    other = run_service_pb2.GetRunDetailsRequest(run_id=RunIdentifier(project="secret", domain="d", name="r"))
    with pytest.raises(REFUSED) as refused:
        check_project_access(other, claims)
    assert code_of(refused.value) == Code.PERMISSION_DENIED and "secret" in refused.value.message
    with pytest.raises(REFUSED) as refused:
        check_project_access(run_service_pb2.ListRunsRequest(org="o"), claims)
    assert code_of(refused.value) == Code.PERMISSION_DENIED


def test_the_router_refuses_before_the_handler_runs():
    router = ConnectRouter()
    calls = []

    @router.unary("/p.S/Get", run_service_pb2.GetRunDetailsRequest)
    def get(request):
        calls.append(request)
        return run_service_pb2.GetRunDetailsResponse()

    body = json.dumps({"runId": {"project": "secret", "domain": "d", "name": "r"}}).encode()
    headers = {"content-type": "application/json"}
    refused = router.dispatch(HttpRequest("POST", "/p.S/Get", headers, body, claims={"projects": "[mine]"}))
    assert refused.status == 403 and json.loads(refused.body)["code"] == "permission_denied"
    assert calls == []
    allowed = router.dispatch(HttpRequest("POST", "/p.S/Get", headers, body, claims={"projects": "[secret]"}))
    assert allowed.status == 200 and len(calls) == 1
