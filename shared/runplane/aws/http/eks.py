"""EKS's DescribeCluster, the one EKS call reconcile and the status mirror make (at their first request).

EKS's API is REST with JSON answers: ``GET /clusters/<name>``. Errors name their code in the
``x-amzn-ErrorType`` header (``ResourceNotFoundException:http://...``) or the body's ``__type``.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from runplane.aws.http.sigv4 import payload_hash
from runplane.aws.http.transport import Answer, Endpoint, ErrorClasses

EMPTY_BODY_HASH = payload_hash(b"")
ERRORS = ErrorClasses()


def describe_cluster(*, endpoint: Endpoint, name: str) -> dict[str, Any]:
    """The cluster's description (``endpoint``, ``certificateAuthority.data``, ...), as
    botocore's ``describe_cluster(name=...)["cluster"]``."""
    answer = endpoint.exchange(
        method="GET",
        path=f"/clusters/{quote(name, safe='')}",
        headers={"Accept": "application/json"},
        body=b"",
        body_hash=EMPTY_BODY_HASH,
        operation="DescribeCluster",
        error_of=_error_of,
        errors=ERRORS,
    )
    cluster: dict[str, Any] = json.loads(answer.body)["cluster"]
    return cluster


def _error_of(answer: Answer) -> dict[str, Any] | None:
    if answer.status < 300:
        return None
    try:
        data = json.loads(answer.body) if answer.body else {}
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    code = answer.headers.get("x-amzn-errortype", "").split(":", 1)[0]
    code = code or str(data.get("__type", "")).rpartition("#")[2] or str(answer.status)
    message = str(data.get("message", data.get("Message", "")))
    return {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": answer.status}}
