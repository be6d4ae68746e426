"""API Gateway HTTP API (payload format 2.0) events <-> the router's HTTP request and response.

The same translation serves Lambda on AWS and the local front (``local_stack.apigateway``), which
builds these very events, so both run the handlers through one code path.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from typing import Any

from runplane.connect.codec import HttpRequest, HttpResponse
from runplane.connect.errors import Code, ConnectError
from runplane.connect.router import ConnectRouter

logger = logging.getLogger(__name__)


def request_from_event(event: dict[str, Any]) -> HttpRequest:
    http = event.get("requestContext", {}).get("http", {})
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    raw_body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            body = base64.b64decode(raw_body, validate=True)
        except (binascii.Error, ValueError):
            raise ConnectError(Code.INVALID_ARGUMENT, "request body is not valid base64") from None
    else:
        body = raw_body.encode() if isinstance(raw_body, str) else bytes(raw_body)
    path = event.get("rawPath") or http.get("path") or "/"
    stage = event.get("requestContext", {}).get("stage", "$default")
    if stage and stage != "$default" and path.startswith(f"/{stage}/"):
        path = path[len(stage) + 1 :]
    return HttpRequest(
        method=http.get("method", "POST").upper(), path=path, headers=headers, body=body, claims=_jwt_claims(event)
    )


def _jwt_claims(event: dict[str, Any]) -> dict[str, str]:
    """The claims of the JWT authorizer (payload 2.0: every value a string); none without one."""
    authorizer = (event.get("requestContext") or {}).get("authorizer") or {}
    claims = (authorizer.get("jwt") or {}).get("claims") or {}
    return {str(name): str(value) for name, value in claims.items()}


def event_response(response: HttpResponse) -> dict[str, Any]:
    return {
        "statusCode": response.status,
        "headers": response.headers,
        "isBase64Encoded": True,
        "body": base64.b64encode(response.body).decode(),
    }


def handle_http_event(router: ConnectRouter, event: dict[str, Any]) -> dict[str, Any]:
    """Serve one payload-v2 event; always a Connect-shaped answer, never an exception."""
    try:
        request = request_from_event(event)
    except ConnectError as error:
        return _error_event(error)
    except Exception:
        logger.exception("malformed API Gateway event")
        return _error_event(ConnectError(Code.INTERNAL, "malformed gateway event"))
    return event_response(router.dispatch(request))


def _error_event(error: ConnectError) -> dict[str, Any]:
    return {
        "statusCode": error.code.http_status,
        "headers": {"content-type": "application/json"},
        "isBase64Encoded": False,
        "body": json.dumps({"code": error.code.value, "message": error.message}),
    }
