"""Decoding unary Connect requests and encoding their responses.

A request is ``POST /<package>.<Service>/<Method>`` whose body is the bare message, either binary
protobuf (``application/proto``, what the flyte SDK sends, always gzip-compressed) or proto3 JSON
(``application/json``, what curl and browsers send). The response uses the request's codec.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message

from runplane.connect.errors import Code, ConnectError, invalid_argument

M = TypeVar("M", bound=Message)

# API Gateway accepts 10 MB and a synchronous Lambda invocation 6 MB; a decompressed body above
# this is either a mistake or a gzip bomb. Large specs belong in the data bucket, not in a request.
MAX_REQUEST_BYTES = 4 * 1024 * 1024

CODECS = {"application/proto": "proto", "application/json": "json"}
ACCEPT_POST = "application/json, application/proto"


@dataclass(frozen=True)
class HttpRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes = b""
    # The JWT claims API Gateway's authorizer verified (requestContext.authorizer.jwt.claims);
    # empty on a route without an authorizer.
    claims: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def codec_of(request: HttpRequest) -> str:
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    codec = CODECS.get(content_type)
    if codec is None:
        raise UnsupportedMediaType(content_type)
    return codec


class UnsupportedMediaType(Exception):
    """Raised for a content type the unary protocol does not define; answered with HTTP 415."""


def request_payload(request: HttpRequest) -> bytes:
    """The request body after content decoding, bounded before and after decompression."""
    body = request.body
    if len(body) > MAX_REQUEST_BYTES:
        raise invalid_argument(f"request body of {len(body)} bytes exceeds the limit of {MAX_REQUEST_BYTES}")
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding != "gzip":
        raise ConnectError(Code.UNIMPLEMENTED, f"unsupported content-encoding {encoding!r}")
    return gunzip_bounded(body, what="request body")


def gunzip_bounded(data: bytes, *, what: str, limit: int = MAX_REQUEST_BYTES) -> bytes:
    """``data`` gunzipped, never holding more than ``limit`` + 1 decompressed bytes.

    The one decompressor of the wire (unary bodies and stream envelopes): ``gzip.decompress``
    inflates a bomb whole before any size check (1 MB of zeros is 1 GB), so the output is capped
    by ``max_length`` and anything past the limit is refused without being inflated.
    """
    decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        payload = decompressor.decompress(data, limit + 1)
    except zlib.error as exc:
        raise invalid_argument(f"cannot decompress gzip {what}: {exc}") from None
    if len(payload) > limit:
        # invalid_argument, not resource_exhausted (HTTP 429), which clients retry
        raise invalid_argument(f"decompressed {what} exceeds the limit of {limit} bytes")
    if not decompressor.eof:
        raise invalid_argument(f"truncated gzip {what}")
    return payload


def decode_message(payload: bytes, codec: str, message_type: type[M]) -> M:
    message = message_type()
    try:
        if codec == "proto":
            message.ParseFromString(payload)
        else:
            text = payload.decode("utf-8") if payload.strip() else "{}"
            json_format.Parse(text, message, ignore_unknown_fields=True)
    except (DecodeError, json_format.ParseError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise invalid_argument(f"cannot decode {message_type.DESCRIPTOR.full_name}: {exc}") from None
    return message


def encode_message(message: Message, codec: str, *, accept_encoding: str = "") -> HttpResponse:
    body = message.SerializeToString() if codec == "proto" else json_format.MessageToJson(message, indent=None).encode()
    headers = {"content-type": f"application/{codec}"}
    # Compressing small bodies costs more than it saves; API Gateway bills by bytes, not CPU.
    if len(body) > 1024 and "gzip" in accept_encoding.lower():
        body = gzip.compress(body, compresslevel=5)
        headers["content-encoding"] = "gzip"
    return HttpResponse(status=200, body=body, headers=headers)


def error_response(error: ConnectError) -> HttpResponse:
    return HttpResponse(
        status=error.code.http_status,
        body=error.to_json(),
        headers={"content-type": "application/json"},
    )
