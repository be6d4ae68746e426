"""Connect server streams: the envelopes, sent frame by frame or buffered.

A request is one envelope (1 flag byte, 4-byte big-endian length, the message; flag 0x01 means
compressed with ``connect-content-encoding``). The answer is always HTTP 200 with
``application/connect+<codec>``: one envelope per message, then an end-of-stream envelope (flag
0x02) whose JSON is ``{}`` or ``{"error": {"code", "message"}}``.

``stream_frames`` yields each envelope as its message is produced: what the streaming route (a
Lambda function URL in RESPONSE_STREAM mode, the local front's chunked answer) writes as it goes.
The router's buffered fallback joins the same frames into one body: what API Gateway's HTTP API,
which cannot stream, carries. Flyte's SDK re-subscribes when a stream ends before the action does.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Iterator

from google.protobuf import json_format
from google.protobuf.message import Message

from runplane.connect.codec import MAX_REQUEST_BYTES, HttpRequest, HttpResponse, decode_message, gunzip_bounded
from runplane.connect.errors import Code, ConnectError, invalid_argument

STREAM_CODECS = {"application/connect+proto": "proto", "application/connect+json": "json"}
ACCEPT_POST = "application/connect+json, application/connect+proto"
FLAG_COMPRESSED = 0x01
FLAG_END_STREAM = 0x02
_HEADER = struct.Struct(">BI")


def stream_codec_of(request: HttpRequest) -> str | None:
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return STREAM_CODECS.get(content_type)


def decode_stream_request(request: HttpRequest, codec: str, message_type: type[Message]) -> Message:
    body = request.body
    if len(body) < _HEADER.size:
        raise invalid_argument("stream request needs one enveloped message")
    flags, length = _HEADER.unpack_from(body)
    payload = body[_HEADER.size : _HEADER.size + length]
    if len(payload) != length or length > MAX_REQUEST_BYTES:
        raise invalid_argument("malformed or oversized stream envelope")
    if flags & FLAG_COMPRESSED:
        if request.headers.get("connect-content-encoding", "").strip().lower() != "gzip":
            raise invalid_argument("compressed envelope without connect-content-encoding: gzip")
        payload = gunzip_bounded(payload, what="stream envelope")
    return decode_message(payload, codec, message_type)


def envelope(payload: bytes, *, flags: int = 0) -> bytes:
    return _HEADER.pack(flags, len(payload)) + payload


def message_frame(message: Message, codec: str) -> bytes:
    """One message's envelope."""
    if codec == "proto":
        return envelope(message.SerializeToString())
    return envelope(json_format.MessageToJson(message, indent=None).encode())


def end_frame(error: ConnectError | None = None) -> bytes:
    """The end-of-stream envelope: ``{}``, or the error that ended the stream."""
    end = {"error": {"code": error.code.value, "message": error.message}} if error else {}
    return envelope(json.dumps(end).encode(), flags=FLAG_END_STREAM)


def stream_headers(codec: str) -> dict[str, str]:
    return {"content-type": f"application/connect+{codec}"}


def stream_frames(messages: Iterable[Message], codec: str, *, error: ConnectError | None = None) -> Iterator[bytes]:
    for message in messages:
        yield message_frame(message, codec)
    yield end_frame(error)


def unsupported_stream_media_type(content_type: str) -> HttpResponse:
    return HttpResponse(
        status=415,
        body=ConnectError(Code.INVALID_ARGUMENT, f"unsupported content-type {content_type!r}").to_json(),
        headers={"content-type": "application/json", "accept-post": ACCEPT_POST},
    )
