import base64
import json

from runplane.connect.apigateway import handle_http_event, request_from_event
from runplane.connect.router import ConnectRouter


def event(body, *, b64=False, path="/p.S/M", stage="$default", headers=None):
    return {
        "version": "2.0",
        "rawPath": path,
        "headers": headers or {"Content-Type": "application/json"},
        "requestContext": {"http": {"method": "POST", "path": path}, "stage": stage},
        "body": body,
        "isBase64Encoded": b64,
    }


def test_text_and_base64_bodies_become_bytes_and_headers_lowercase():
    assert request_from_event(event('{"a":1}')).body == b'{"a":1}'
    request = request_from_event(event(base64.b64encode(b"\x00\x01").decode(), b64=True))
    assert request.body == b"\x00\x01"
    assert request.headers["content-type"] == "application/json"


def test_a_named_stage_is_stripped_from_the_path():
    assert request_from_event(event("", path="/prod/p.S/M", stage="prod")).path == "/p.S/M"


def test_invalid_base64_is_a_connect_error_not_a_crash():
    response = handle_http_event(ConnectRouter(), event("@@not base64@@", b64=True))
    assert response["statusCode"] == 400
    assert json.loads(response["body"])["code"] == "invalid_argument"


def test_responses_are_base64_with_the_connect_status():
    response = handle_http_event(ConnectRouter(), event("{}"))
    assert response["statusCode"] == 501 and response["isBase64Encoded"] is True
    assert json.loads(base64.b64decode(response["body"]))["code"] == "unimplemented"
