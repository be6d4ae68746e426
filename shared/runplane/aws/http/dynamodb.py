"""DynamoDB's JSON protocol, spoken directly: the client every function's table access goes through.

DynamoDB's API is one POST per operation (``X-Amz-Target: DynamoDB_20120810.<Operation>``) whose
JSON body *is* the operation's parameters, the same dictionaries botocore takes; binary attribute
values travel base64-encoded. So ``client.put_item(TableName=..., Item=...)`` here sends what
botocore's would and answers what botocore's would (``B``/``BS`` values decoded to bytes), and the
data-access layer keeps botocore's typed signatures (``mypy_boto3_dynamodb``) without paying
botocore's import and model loading at every cold start. Two differences, neither used by the
functions: timestamps in answers (``DescribeTable``) stay epoch numbers, and there is no
paginator or waiter.
"""

from __future__ import annotations

import base64
import json
import zlib
from functools import partial
from typing import Any

from runplane.aws.http.sigv4 import payload_hash
from runplane.aws.http.transport import Answer, Endpoint, ErrorClasses

TARGET_PREFIX = "DynamoDB_20120810"
CONTENT_TYPE = "application/x-amz-json-1.0"


def _encode_blob(value: object) -> str:
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    raise TypeError(f"{type(value).__name__} is not a DynamoDB attribute value")


def _decode_blobs(obj: dict[str, Any]) -> dict[str, Any]:
    """json's object hook: an AttributeValue ``{"B": "<base64>"}`` (or ``BS``) back to bytes.
    An AttributeValue is the only one-key object whose key is ``B`` with a string (or ``BS``
    with a list) in DynamoDB's answers; an attribute *named* B maps to an object instead."""
    if len(obj) == 1:
        if isinstance(value := obj.get("B"), str):
            return {"B": base64.b64decode(value)}
        if isinstance(values := obj.get("BS"), list):
            return {"BS": [base64.b64decode(v) for v in values]}
    return obj


def _operation_name(method: str) -> str:
    return "".join(part.title() for part in method.split("_"))  # batch_get_item -> BatchGetItem


class DynamoDBClient:
    """botocore's DynamoDB client's calling convention: ``client.<operation>(**params)``."""

    def __init__(self, *, endpoint: Endpoint) -> None:
        self._endpoint = endpoint
        self.exceptions = ErrorClasses()

    def __getattr__(self, method: str) -> Any:
        if method.startswith("_"):
            raise AttributeError(method)
        bound = partial(self.call, _operation_name(method))
        setattr(self, method, bound)  # later calls skip __getattr__
        return bound

    def call(self, operation: str, /, **params: Any) -> dict[str, Any]:
        body = json.dumps(params, default=_encode_blob, separators=(",", ":")).encode()
        answer = self._endpoint.exchange(
            method="POST",
            path="/",
            headers={"Content-Type": CONTENT_TYPE, "X-Amz-Target": f"{TARGET_PREFIX}.{operation}"},
            body=body,
            body_hash=payload_hash(body),
            operation=operation,
            error_of=_error_of,
            errors=self.exceptions,
        )
        parsed: dict[str, Any] = json.loads(answer.body, object_hook=_decode_blobs) if answer.body else {}
        parsed["ResponseMetadata"] = _metadata(answer)
        return parsed


def _metadata(answer: Answer) -> dict[str, Any]:
    return {"HTTPStatusCode": answer.status, "RequestId": answer.headers.get("x-amzn-requestid", "")}


def _error_of(answer: Answer) -> dict[str, Any] | None:
    """None for a good answer; a botocore-shaped error response otherwise. An answer whose body
    fails the CRC32 DynamoDB sends is a transient error (botocore retries it too)."""
    expected = answer.headers.get("x-amz-crc32")
    if expected is not None and answer.status < 300 and zlib.crc32(answer.body) != int(expected):
        return {"Error": {"Code": "Crc32Mismatch", "Message": "the answer failed its CRC32 check"}}
    if answer.status < 300:
        return None
    try:
        data = json.loads(answer.body, object_hook=_decode_blobs) if answer.body else {}
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    code = str(data.pop("__type", "")).rpartition("#")[2] or str(answer.status)
    message = str(data.pop("message", data.pop("Message", "")))
    return {"Error": {"Code": code, "Message": message}, "ResponseMetadata": _metadata(answer), **data}
