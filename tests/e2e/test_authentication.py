"""Authentication end to end: the local front enforces template.yaml's JWT authorizers as API
Gateway does, against the stack's own identity provider, over HTTP as a client sends it.

Inside ``stack.authentication()``: a request without a valid token (missing, expired, for another
audience or issuer, malformed, unsigned, signed by another key, altered) is 401
``{"message":"Unauthorized"}``; a token without the route's scope is 403 ``{"message":"Forbidden"}``;
either way nothing is written. The discovery routes answer without a token; a token limited to
projects (its ``projects`` claim, which reaches the handler through the authorizer's claims) touches
only those. The real flyte SDK logs in with client credentials over TLS, and real tasks run with
the credentials the stack gives task processes.
"""

from __future__ import annotations

import base64
import json
import ssl
import urllib.request

import boto3
import pytest
from flyteidl2.auth import auth_service_pb2 as auth
from flyteidl2.common.identifier_pb2 import ProjectIdentifier
from flyteidl2.common.phase_pb2 import ActionPhase
from flyteidl2.workflow import events_proxy_service_pb2 as events_proxy
from flyteidl2.workflow import internal_run_service_pb2 as internal
from flyteidl2.workflow import run_definition_pb2 as wf
from flyteidl2.workflow import run_service_pb2
from google.protobuf import json_format

from local_stack.auth import BROWSER_CLIENT, DATA_PLANE_CLIENT, TASK_CLIENT, USER_CLIENT
from local_stack.issuer import LocalIssuer
from runplane.aws.run_tokens import RUN_TOKEN_ENV
from runplane.flyte import phases
from runplane.flyte.identifiers import RunKey
from runplane.table.actions import ActionStore
from tests.builders import DOMAIN, PROJECT, action_id, create_run_request
from tests.conftest import unique_name
from tests.e2e.sdk_login import init_flyte_as_user
from tests.e2e.test_create_run_http import post, post_proto_gzip

pytestmark = pytest.mark.e2e

CREATE_RUN = "/flyteidl2.workflow.RunService/CreateRun"
GET_RUN = "/flyteidl2.workflow.RunService/GetRunDetails"
LIST_RUNS = "/flyteidl2.workflow.RunService/ListRuns"
UPDATE_STATUS = "/flyteidl2.workflow.InternalRunService/UpdateActionStatus"
RECORD_EVENTS = "/flyteidl2.workflow.EventsProxyService/Record"
OAUTH2_METADATA = "/flyteidl2.auth.AuthMetadataService/GetOAuth2Metadata"
PUBLIC_CLIENT_CONFIG = "/flyteidl2.auth.AuthMetadataService/GetPublicClientConfig"
UNAUTHORIZED = {"message": "Unauthorized"}
FORBIDDEN = {"message": "Forbidden"}


@pytest.fixture
def authenticated(stack):
    with stack.authentication():
        yield stack


@pytest.fixture
def store(stack):
    return ActionStore(table_name=stack.aws.table_name)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def user_token(stack, **claims) -> str:
    return stack.auth.issuer.mint(subject="someone", scopes=[stack.auth.user_scope], **claims)


def nothing_written(stack, store: ActionStore, name: str) -> bool:
    objects = boto3.client("s3").list_objects_v2(Bucket=stack.aws.bucket, Prefix=f"{PROJECT}/{DOMAIN}/{name}/")
    return not store.list_actions(RunKey(PROJECT, DOMAIN, name)) and objects.get("KeyCount", 0) == 0


def create_run(stack, name: str, headers: dict[str, str]):
    return post_proto_gzip(stack, create_run_request(name), headers=headers)


def update_status(stack, name: str, phase: ActionPhase, headers: dict[str, str]):
    request = internal.UpdateActionStatusRequest(
        action_id=action_id(name, "a0"), status=wf.ActionStatus(phase=phase, attempts=1)
    )
    return post_proto_gzip(stack, request, UPDATE_STATUS, headers=headers)


def phase_of(store: ActionStore, name: str) -> int:
    record = store.get_action(RunKey(PROJECT, DOMAIN, name).action("a0"))
    assert record is not None
    return record.phase


def _unsigned(token: str) -> str:
    """The same claims with ``alg: none`` and no signature."""
    header = base64.urlsafe_b64encode(json.dumps({"alg": "none", "typ": "JWT"}).encode()).rstrip(b"=").decode()
    return f"{header}.{token.split('.')[1]}."


def _altered(token: str) -> str:
    """The payload changed (another scope) under the original signature."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["scope"] = "runplane/user runplane/data-plane"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


BAD_TOKENS = {
    "expired": lambda stack: user_token(stack, lifetime_seconds=-60),
    "another audience": lambda stack: user_token(stack, audience="someone-else"),
    "another issuer": lambda stack: user_token(stack, issuer="https://issuer.example.com"),
    "issued in the future": lambda stack: user_token(stack, issued_at=2**31),
    "malformed": lambda stack: "not-a-jwt",
    "three garbage parts": lambda stack: "abc.def.ghi",
    "unsigned (alg none)": lambda stack: _unsigned(user_token(stack)),
    "altered payload": lambda stack: _altered(user_token(stack)),
}


# --- 401: no valid token --------------------------------------------------------------------


def test_no_token_is_401_and_nothing_is_written(authenticated, store):
    name = unique_name()
    status, headers, body = create_run(authenticated, name, {})
    assert (status, json.loads(body)) == (401, UNAUTHORIZED)
    assert "invalid_token" in headers["www-authenticate"]
    assert nothing_written(authenticated, store, name)
    # every route but discovery is closed, the data plane's and unknown procedures' too
    for path in (UPDATE_STATUS, RECORD_EVENTS, "/flyteidl2.workflow.RunService/NoSuchProcedure"):
        assert post(authenticated, b"{}", {"Content-Type": "application/json"}, path)[0] == 401, path


@pytest.mark.parametrize("kind", list(BAD_TOKENS))
def test_a_bad_token_is_401_and_nothing_is_written(authenticated, store, kind):
    name = unique_name()
    status, _, body = create_run(authenticated, name, bearer(BAD_TOKENS[kind](authenticated)))
    assert (status, json.loads(body)) == (401, UNAUTHORIZED)
    assert nothing_written(authenticated, store, name)


def test_a_token_signed_by_another_key_is_401(authenticated, store):
    impostor = LocalIssuer(audience=authenticated.auth.issuer.audience)  # same claims, its own key
    try:
        token = impostor.mint(subject="x", scopes=[authenticated.auth.user_scope], issuer=authenticated.auth.issuer.url)
    finally:
        impostor.stop()
    name = unique_name()
    assert create_run(authenticated, name, bearer(token))[0] == 401
    assert nothing_written(authenticated, store, name)


# --- 403: the wrong scope -------------------------------------------------------------------


def test_a_user_token_on_a_data_plane_route_is_403_and_changes_nothing(authenticated, store):
    name = unique_name()
    assert create_run(authenticated, name, authenticated.user_headers())[0] == 200
    status, headers, body = update_status(authenticated, name, phases.RUNNING, authenticated.user_headers())
    assert (status, json.loads(body)) == (403, FORBIDDEN)
    assert "insufficient_scope" in headers["www-authenticate"]
    assert phase_of(store, name) == phases.QUEUED


def test_a_data_plane_token_works_on_the_data_plane_route_and_not_on_user_routes(authenticated, store):
    name = unique_name()
    assert create_run(authenticated, name, authenticated.user_headers())[0] == 200
    assert update_status(authenticated, name, phases.RUNNING, authenticated.data_plane_headers())[0] == 200
    assert phase_of(store, name) == phases.RUNNING

    other = unique_name()
    status, _, body = create_run(authenticated, other, authenticated.data_plane_headers())
    assert (status, json.loads(body)) == (403, FORBIDDEN)
    assert nothing_written(authenticated, store, other)


def test_without_enforcement_no_token_is_needed(stack, store):
    with stack.authentication(enforced=False):
        name = unique_name()
        assert create_run(stack, name, {})[0] == 200
        assert update_status(stack, name, phases.RUNNING, {})[0] == 200


# --- discovery: no token needed -------------------------------------------------------------


def test_discovery_works_without_a_token(authenticated):
    headers = {"Content-Type": "application/json"}
    status, _, body = post(authenticated, b"{}", headers, OAUTH2_METADATA)
    assert status == 200, body
    metadata = json_format.Parse(body, auth.GetOAuth2MetadataResponse())
    issuer = authenticated.auth.issuer
    assert (metadata.issuer, metadata.token_endpoint) == (issuer.url, issuer.token_endpoint)
    assert metadata.jwks_uri.startswith(issuer.url) and "client_credentials" in metadata.grant_types_supported
    assert metadata.authorization_endpoint == issuer.authorization_endpoint  # people: PKCE (the console too)
    assert list(metadata.code_challenge_methods_supported) == ["S256"]

    status, _, body = post(authenticated, b"{}", headers, PUBLIC_CLIENT_CONFIG)
    assert status == 200, body
    client = json_format.Parse(body, auth.GetPublicClientConfigResponse())
    assert list(client.scopes) == [authenticated.auth.user_scope] and client.client_id == BROWSER_CLIENT
    assert client.authorization_metadata_key == "authorization"


def test_a_client_gets_a_token_at_the_token_endpoint_for_its_own_scopes_only(authenticated):
    user = authenticated.auth.issuer.client(USER_CLIENT)
    basic = base64.b64encode(f"{user.client_id}:{user.secret}".encode()).decode()

    def token_request(form: bytes) -> tuple[int, dict]:
        request = urllib.request.Request(
            authenticated.auth.issuer.token_endpoint, data=form, headers={"Authorization": f"Basic {basic}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    status, answer = token_request(b"grant_type=client_credentials")
    assert status == 200 and answer["token_type"] == "Bearer"
    name = unique_name()
    assert create_run(authenticated, name, bearer(answer["access_token"]))[0] == 200

    status, answer = token_request(
        f"grant_type=client_credentials&scope={authenticated.auth.data_plane_scope}".encode()
    )
    assert (status, answer["error"]) == (400, "invalid_scope")


def test_https_on_the_same_port_with_the_stacks_ca(authenticated):
    context = ssl.create_default_context(cafile=str(authenticated.ca_cert))
    request = urllib.request.Request(
        authenticated.tls_endpoint + OAUTH2_METADATA, data=b"{}", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10, context=context) as response:
        assert response.status == 200


# --- projects: a token limited to some projects touches only those ----------------------------


def test_a_token_for_one_project_cannot_read_or_write_another(authenticated, store):
    other_project = user_token(authenticated, projects=["another-project"])
    this_project = user_token(authenticated, projects=[PROJECT, "another-project"])

    name = unique_name()
    status, _, body = create_run(authenticated, name, bearer(other_project))
    assert (status, json.loads(body)["code"]) == (403, "permission_denied")
    assert nothing_written(authenticated, store, name)

    assert create_run(authenticated, name, bearer(this_project))[0] == 200
    get = run_service_pb2.GetRunDetailsRequest(run_id=action_id(name, "a0").run)
    assert post_proto_gzip(authenticated, get, GET_RUN, headers=bearer(this_project))[0] == 200
    status, _, body = post_proto_gzip(authenticated, get, GET_RUN, headers=bearer(other_project))
    assert (status, json.loads(body)["code"]) == (403, "permission_denied")

    listing = run_service_pb2.ListRunsRequest(project_id=ProjectIdentifier(name=PROJECT, domain=DOMAIN))
    assert post_proto_gzip(authenticated, listing, LIST_RUNS, headers=bearer(other_project))[0] == 403
    assert post_proto_gzip(authenticated, listing, LIST_RUNS, headers=bearer(this_project))[0] == 200


def test_a_record_batch_across_projects_writes_what_the_token_allows_and_names_the_rest(authenticated, store):
    """A data-plane token limited to one project sends the executor's kind of batch (events of two
    projects, one malformed) through the front and its JWT authorizer: 200, the allowed event is
    written, the header names the two others, and neither was written."""
    token = authenticated.auth.issuer.mint(
        subject="executor", scopes=[authenticated.auth.data_plane_scope], projects=[PROJECT]
    )
    mine, theirs = unique_name(), unique_name()
    good = wf.ActionEvent(id=action_id(mine, "a0"), attempt=1, phase=phases.RUNNING)
    foreign = wf.ActionEvent(id=action_id(theirs, "a0"), attempt=1, phase=phases.RUNNING)
    foreign.id.run.project = "another-project"
    malformed = wf.ActionEvent(id=action_id(mine, "a1"), attempt=0, phase=phases.RUNNING)
    batch = events_proxy.RecordRequest(events=[good, foreign, malformed])
    status, headers, body = post_proto_gzip(authenticated, batch, RECORD_EVENTS, headers=bearer(token))
    assert status == 200, body
    refused = json.loads({k.lower(): v for k, v in headers.items()}["x-flyte-refused-events"])
    assert [(r["index"], r["code"]) for r in refused["refused"]] == [(1, "permission_denied"), (2, "invalid_argument")]
    assert [e.phase for e in store.list_events(RunKey(project=PROJECT, domain=DOMAIN, name=mine).action("a0"))] == [
        phases.RUNNING
    ]
    assert store.list_events(RunKey(project=PROJECT, domain=DOMAIN, name=mine).action("a1")) == []
    assert store.list_events(RunKey(project="another-project", domain=DOMAIN, name=theirs).action("a0")) == []


# --- the real SDK and real tasks ------------------------------------------------------------


def custom_objects_root(stack, run: str) -> dict:
    """The run's root TaskAction, read with the admin kubeconfig."""
    from kubernetes import client, config

    from tests.builders import resource_name

    api = client.CustomObjectsApi(config.new_client_from_config(config_file=str(stack.kube.kubeconfig)))
    return dict(api.get_namespaced_custom_object("flyte.org", "v1", "flyte", "taskactions", resource_name(run)))  # type: ignore[call-overload]


def test_real_tasks_run_with_the_credentials_task_processes_get(stack, store):
    """Everything authenticated: the SDK on the "laptop" (user client), the SDK inside the parent
    task enqueuing and watching its children (with its run's token alone),
    and the executor's events (no credentials of its own: the events relay logs in as the
    data-plane client)."""
    import flyte

    from tests.e2e.sdk_tasks.nested import fan_out

    granted = dict(stack.auth.issuer.granted)
    with stack.authentication(), stack.data_plane():
        init_flyte_as_user(stack)
        run = flyte.with_runcontext(mode="remote").run(fan_out, n=2)
        run.wait(quiet=True)
    assert run.phase == "succeeded", run.phase
    assert "30" in str(run.outputs())
    actions = store.list_actions(RunKey(PROJECT, DOMAIN, run.name))
    assert len(actions) == 5 and {a.phase for a in actions} == {phases.SUCCEEDED}
    # the SDK logged in (discovery, then the token endpoint) as the user client; the tasks used no
    # client at all: each pod sent its run's token, which reconcile put in its env (issue 22)
    assert stack.auth.issuer.granted[USER_CLIENT] > granted.get(USER_CLIENT, 0)
    assert stack.auth.issuer.granted.get(TASK_CLIENT, 0) == granted.get(TASK_CLIENT, 0)
    root = custom_objects_root(stack, run.name)
    token = root["spec"]["envVars"][RUN_TOKEN_ENV]
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims["flyte_run"] == f"{PROJECT}/{DOMAIN}/{run.name}" and claims["scope"] == stack.auth.data_plane_scope
    assert stack.auth.issuer.granted[DATA_PLANE_CLIENT] >= 1  # the relay's token, cached
