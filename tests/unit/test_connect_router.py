"""The Connect unary protocol as the router serves it: codecs, compression, and every failure
mapped to a Connect error body with the right HTTP status."""

import gzip
import json

import pytest
from flyteidl2.workflow.run_service_pb2 import AbortRunRequest, AbortRunResponse
from google.protobuf import json_format

from runplane.connect.codec import MAX_REQUEST_BYTES, HttpRequest
from runplane.connect.errors import Code, ConnectError
from runplane.connect.router import ConnectRouter

PATH = "/flyteidl2.workflow.RunService/AbortRun"


@pytest.fixture
def router():
    router = ConnectRouter()
    seen = []

    @router.unary(PATH, AbortRunRequest)
    def abort(request: AbortRunRequest) -> AbortRunResponse:
        seen.append(request)
        if request.reason == "boom":
            raise RuntimeError("unexpected")
        if request.reason == "missing":
            raise ConnectError(Code.NOT_FOUND, "run not found")
        return AbortRunResponse()

    router.seen = seen
    return router


def post(router, body: bytes, content_type="application/json", **headers):
    return router.dispatch(
        HttpRequest(method="POST", path=PATH, headers={"content-type": content_type, **headers}, body=body)
    )


def error_of(response):
    assert response.headers["content-type"] == "application/json"
    return json.loads(response.body)


def test_json_request_gets_json_response(router):
    response = post(router, b'{"runId": {"project": "p", "domain": "d", "name": "r1"}, "reason": "x"}')
    assert response.status == 200
    assert response.headers["content-type"] == "application/json"
    assert router.seen[0].run_id.name == "r1"


def test_gzip_proto_request_gets_proto_response(router):
    message = AbortRunRequest(reason="x")
    message.run_id.name = "r2"
    response = post(
        router, gzip.compress(message.SerializeToString()), "application/proto", **{"content-encoding": "gzip"}
    )
    assert response.status == 200
    assert response.headers["content-type"] == "application/proto"
    assert router.seen[0].run_id.name == "r2"


def test_unknown_json_fields_are_ignored_for_newer_clients(router):
    assert post(router, b'{"reason": "x", "fieldFromTheFuture": 1}').status == 200


def test_empty_json_body_is_the_empty_message(router):
    assert post(router, b"").status == 200


@pytest.mark.parametrize(
    "body, content_type",
    [
        (b"{not json", "application/json"),
        (b"\xff\xff\xff", "application/proto"),
        (b'{"reason": 5}', "application/json"),
    ],
)
def test_malformed_bodies_are_invalid_argument(router, body, content_type):
    response = post(router, body, content_type)
    assert response.status == 400
    assert error_of(response)["code"] == "invalid_argument"
    assert not router.seen


def test_unknown_content_type_is_415_with_a_connect_body(router):
    response = post(router, b"x", "text/plain")
    assert response.status == 415
    assert response.headers["accept-post"] == "application/json, application/proto"
    assert error_of(response)["code"] == "invalid_argument"


def test_corrupt_gzip_is_invalid_argument(router):
    response = post(router, b"not gzip", **{"content-encoding": "gzip"})
    assert response.status == 400 and error_of(response)["code"] == "invalid_argument"


def test_gzip_bomb_is_refused_after_bounded_decompression(router):
    bomb = gzip.compress(b"{" + b" " * (MAX_REQUEST_BYTES + 10) + b"}")
    assert len(bomb) < 100_000
    response = post(router, bomb, **{"content-encoding": "gzip"})
    assert response.status == 400
    assert "limit" in error_of(response)["message"]


def test_truncated_gzip_is_invalid_argument(router):
    whole = gzip.compress(b"{}")
    response = post(router, whole[:-8], **{"content-encoding": "gzip"})  # the trailer (CRC, size) cut off
    assert response.status == 400 and error_of(response)["message"] == "truncated gzip request body"


def test_oversized_body_is_invalid_argument(router):
    response = post(router, b" " * (MAX_REQUEST_BYTES + 1))
    assert response.status == 400 and error_of(response)["code"] == "invalid_argument"


def test_unsupported_content_encoding_is_unimplemented(router):
    response = post(router, b"{}", **{"content-encoding": "br"})
    assert response.status == 501 and error_of(response)["code"] == "unimplemented"


def test_wrong_protocol_version_is_invalid_argument(router):
    response = post(router, b"{}", **{"connect-protocol-version": "2"})
    assert response.status == 400 and error_of(response)["code"] == "invalid_argument"


def test_unknown_procedure_is_unimplemented(router):
    response = router.dispatch(HttpRequest(method="POST", path="/x.Y/Z", headers={"content-type": "application/json"}))
    assert response.status == 501 and error_of(response)["code"] == "unimplemented"


def test_get_is_method_not_allowed(router):
    response = router.dispatch(HttpRequest(method="GET", path=PATH, headers={}))
    assert response.status == 405 and response.headers["allow"] == "POST"


def test_handler_errors_keep_their_code(router):
    response = post(router, b'{"reason": "missing"}')
    assert response.status == 404 and error_of(response) == {"code": "not_found", "message": "run not found"}


def test_unexpected_exceptions_are_internal_never_unknown(router):
    response = post(router, b'{"reason": "boom"}')
    assert response.status == 500
    assert error_of(response)["code"] == "internal"


def test_large_responses_are_gzipped_when_accepted():
    router = ConnectRouter()

    @router.unary(PATH, AbortRunRequest)
    def echo(request):
        return request  # any message will do

    body = json_format.MessageToJson(AbortRunRequest(reason="x" * 5000)).encode()
    response = post(router, body, **{"accept-encoding": "gzip, identity"})
    assert response.headers["content-encoding"] == "gzip"
    assert json.loads(gzip.decompress(response.body))["reason"] == "x" * 5000


def test_a_procedure_with_the_call_checks_projects_itself_and_adds_response_headers():
    """``with_call``: the router's whole-request project check is skipped (the handler checks each
    item), the handler gets the token's claims, and its response headers are sent."""
    from runplane.connect.calls import Call

    router = ConnectRouter()
    seen: list[Call] = []

    @router.unary(PATH, AbortRunRequest, with_call=True)
    def abort(request: AbortRunRequest, call: Call) -> AbortRunResponse:
        seen.append(call)
        call.response_headers["x-note"] = "checked"
        return AbortRunResponse()

    body = b'{"runId": {"project": "other", "domain": "d", "name": "r1"}}'
    response = router.dispatch(
        HttpRequest(
            method="POST", path=PATH, headers={"content-type": "application/json"}, body=body, claims={"projects": "p"}
        )
    )
    assert response.status == 200 and response.headers["x-note"] == "checked"
    assert seen[0].claims == {"projects": "p"}

    plain = ConnectRouter()
    plain.unary(PATH, AbortRunRequest)(lambda request: AbortRunResponse())
    refused = plain.dispatch(
        HttpRequest(
            method="POST", path=PATH, headers={"content-type": "application/json"}, body=body, claims={"projects": "p"}
        )
    )
    assert refused.status == 403 and error_of(refused)["code"] == "permission_denied"
