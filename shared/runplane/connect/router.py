"""Procedure registry and dispatch: the protocol checks every unary Connect call goes through.

A function declares the procedures it serves::

    router = ConnectRouter()

    @router.unary("/flyteidl2.workflow.RunService/CreateRun", CreateRunRequest)
    def create_run(request: CreateRunRequest) -> CreateRunResponse: ...

and ``router.dispatch(http_request)`` does the rest: method and protocol-version checks, codec
selection, bounded decompression, decoding, the token's project limit (``access``: a token with a
``projects`` claim touches only those projects; checked item by item by the handler of a procedure
registered ``with_call``, ``calls``), and mapping every failure to a Connect error body.
Nothing a client sends can produce a bare 500 or the code ``unknown``: unexpected exceptions are
logged and answered as ``internal``. Every error answered is counted (the ``ConnectErrors`` metric,
by code), and the run and action a decoded request names go on the invocation's log lines.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from google.protobuf.message import Message

from runplane.connect.access import check_project_access
from runplane.connect.caller import set_claims
from runplane.connect.calls import Call
from runplane.connect.codec import (
    ACCEPT_POST,
    HttpRequest,
    HttpResponse,
    UnsupportedMediaType,
    codec_of,
    decode_message,
    encode_message,
    error_response,
    request_payload,
)
from runplane.connect.errors import Code, ConnectError, as_connect_error
from runplane.connect.streams import (
    decode_stream_request,
    end_frame,
    message_frame,
    stream_codec_of,
    stream_headers,
    unsupported_stream_media_type,
)
from runplane.errors import DomainError
from runplane.ops import metrics
from runplane.ops.logs import bind_request

logger = logging.getLogger(__name__)

# A handler takes its procedure's request type (the router decodes the request as that type
# before the call, hence Any here) and returns the response, or for a server stream the messages.
Handler = Callable[[Any], Message]
StreamHandler = Callable[[Any], Iterable[Message]]

_RequestT = TypeVar("_RequestT", bound=Message)
_ResponseT = TypeVar("_ResponseT", bound=Message)
_MessagesT = TypeVar("_MessagesT", bound=Iterable[Message])
_ServiceT = TypeVar("_ServiceT")

# What ``ConnectRouter.mount`` serves: path -> (request type, unbound method of the service).
Procedures = Mapping[str, tuple[type[Message], Callable[[_ServiceT, Any], Any]]]


@dataclass(frozen=True)
class Procedure:
    path: str
    request_type: type[Message]
    handler: Handler | StreamHandler
    streaming: bool = False  # a server stream: the handler (a StreamHandler) returns the messages to send
    # the handler takes (request, Call) and checks the token's projects itself, item by item
    # (runplane.connect.calls); the router's whole-request check is skipped
    with_call: bool = False


@dataclass(frozen=True)
class StreamedResponse:
    """An answer sent as it is produced: ``chunks`` are written (and flushed) one by one, and
    closing it (the client left) stops the handler at its next message."""

    status: int
    headers: dict[str, str]
    chunks: Iterator[bytes]


class ConnectRouter:
    def __init__(self) -> None:
        self._procedures: dict[str, Procedure] = {}

    @property
    def paths(self) -> list[str]:
        return sorted(self._procedures)

    def unary(
        self, path: str, request_type: type[_RequestT], *, with_call: bool = False
    ) -> Callable[[Callable[..., _ResponseT]], Callable[..., _ResponseT]]:
        def register(handler: Callable[..., _ResponseT]) -> Callable[..., _ResponseT]:
            if path in self._procedures:
                raise ValueError(f"procedure {path} registered twice")
            self._procedures[path] = Procedure(path, request_type, handler, with_call=with_call)
            return handler

        return register

    def mount(
        self,
        procedures: Procedures[_ServiceT],
        service: Callable[[], _ServiceT],
        *,
        streaming: bool = False,
        with_call: bool = False,
    ) -> None:
        """Serve each ``path -> (request type, unbound service method)`` with the service that
        ``service()`` returns (built lazily: settings and clients on the first request). With
        ``with_call``, each method takes ``(request, call)`` (``Procedure.with_call``)."""
        for path, (request_type, method) in procedures.items():
            handler = _served_by(method, service)
            if streaming:
                self.server_stream(path, request_type)(handler)
            else:
                self.unary(path, request_type, with_call=with_call)(handler)

    def server_stream(
        self, path: str, request_type: type[_RequestT]
    ) -> Callable[[Callable[[_RequestT], _MessagesT]], Callable[[_RequestT], _MessagesT]]:
        """Register a server-streaming procedure; its handler returns (or, to stream, yields) the messages."""

        def register(handler: Callable[[_RequestT], _MessagesT]) -> Callable[[_RequestT], _MessagesT]:
            if path in self._procedures:
                raise ValueError(f"procedure {path} registered twice")
            self._procedures[path] = Procedure(path, request_type, handler, streaming=True)
            return handler

        return register

    def dispatch(self, request: HttpRequest) -> HttpResponse:
        procedure = self._procedures.get(request.path)
        if procedure is not None and procedure.streaming and request.method == "POST":
            return self._dispatch_stream(procedure, request)
        try:
            return self._dispatch(request)
        except (ConnectError, DomainError) as refusal:
            error = as_connect_error(refusal)
            if error.code in (Code.INTERNAL, Code.UNAVAILABLE, Code.DATA_LOSS):
                logger.error("%s failed: %s", request.path, error.message)
            _count_error(error.code)
            return error_response(error)
        except UnsupportedMediaType as exc:
            _count_error(Code.INVALID_ARGUMENT)
            return HttpResponse(
                status=415,
                body=ConnectError(Code.INVALID_ARGUMENT, f"unsupported content-type {str(exc)!r}").to_json(),
                headers={"content-type": "application/json", "accept-post": ACCEPT_POST},
            )
        except Exception:  # the last line of defence: never let a client see a bare 500
            logger.exception("unhandled error in %s", request.path)
            _count_error(Code.INTERNAL)
            return error_response(ConnectError(Code.INTERNAL, "internal error"))

    def dispatch_streamed(self, request: HttpRequest) -> StreamedResponse:
        """``dispatch`` for a route that can stream (a function URL in RESPONSE_STREAM mode, the
        local front): a server stream's frames go out one by one as the handler yields them;
        any other answer is one chunk."""
        procedure = self._procedures.get(request.path)
        if procedure is None or not procedure.streaming or request.method != "POST":
            response = self.dispatch(request)
            return StreamedResponse(response.status, response.headers, iter([response.body]))
        codec = stream_codec_of(request)
        if codec is None:
            _count_error(Code.INVALID_ARGUMENT)
            response = unsupported_stream_media_type(request.headers.get("content-type", ""))
            return StreamedResponse(response.status, response.headers, iter([response.body]))
        return StreamedResponse(200, stream_headers(codec), self._frames(procedure, request, codec))

    def _dispatch_stream(self, procedure: Procedure, request: HttpRequest) -> HttpResponse:
        """The buffered fallback (API Gateway's HTTP API cannot stream): the same frames, collected
        into one body sent when the handler ends."""
        codec = stream_codec_of(request)
        if codec is None:
            _count_error(Code.INVALID_ARGUMENT)
            return unsupported_stream_media_type(request.headers.get("content-type", ""))
        return HttpResponse(
            status=200, body=b"".join(self._frames(procedure, request, codec)), headers=stream_headers(codec)
        )

    def _frames(self, procedure: Procedure, request: HttpRequest, codec: str) -> Iterator[bytes]:
        """Each message's envelope as the handler yields it, then the end-of-stream frame; errors
        of a stream travel in that frame, with HTTP 200."""
        try:
            message = decode_stream_request(request, codec, procedure.request_type)
            bind_request(message)
            check_project_access(message, request.claims)
            for response in cast(StreamHandler, procedure.handler)(message):
                yield message_frame(response, codec)
        except (ConnectError, DomainError) as refusal:
            error = as_connect_error(refusal)
            _count_error(error.code)
            yield end_frame(error)
            return
        except Exception:
            logger.exception("unhandled error in %s", request.path)
            _count_error(Code.INTERNAL)
            yield end_frame(ConnectError(Code.INTERNAL, "internal error"))
            return
        yield end_frame()

    def _dispatch(self, request: HttpRequest) -> HttpResponse:
        procedure = self._procedures.get(request.path)
        if procedure is None:
            raise ConnectError(Code.UNIMPLEMENTED, unimplemented_message(request.path))
        if request.method != "POST":
            _count_error(Code.INVALID_ARGUMENT)
            return HttpResponse(
                status=405,
                body=ConnectError(Code.INVALID_ARGUMENT, f"{request.method} is not allowed; use POST").to_json(),
                headers={"content-type": "application/json", "allow": "POST"},
            )
        version = request.headers.get("connect-protocol-version")
        if version is not None and version.strip() != "1":
            raise ConnectError(Code.INVALID_ARGUMENT, "connect-protocol-version must be 1")
        codec = codec_of(request)
        message = decode_message(request_payload(request), codec, procedure.request_type)
        bind_request(message)
        if procedure.with_call:  # the handler checks each item's project itself
            call = Call(claims=request.claims)
            response = cast(Callable[[Any, Call], Message], procedure.handler)(message, call)
            encoded = encode_message(response, codec, accept_encoding=request.headers.get("accept-encoding", ""))
            encoded.headers.update(call.response_headers)
            return encoded
        check_project_access(message, request.claims)  # before the handler reads or writes anything
        set_claims(request.claims)  # runplane.connect.caller: who the handler acts for
        response = cast(Handler, procedure.handler)(message)  # not a stream: a unary handler
        return encode_message(response, codec, accept_encoding=request.headers.get("accept-encoding", ""))


def _count_error(code: Code) -> None:
    metrics.count(metrics.CONNECT_ERRORS, Code=code.value)


def _served_by(method: Callable[..., Any], service: Callable[[], _ServiceT]) -> Callable[..., Any]:
    """A handler calling ``method`` of the service ``service()`` returns."""

    def handle(request: Any, *call: Call) -> Any:
        return method(service(), request, *call)

    return handle


def unimplemented_message(path: str) -> str:
    """What a procedure this control plane does not serve answers: the procedure's name (the
    docs/architecture.md lists Flyte's procedures, served or not, and why)."""
    procedure = path.strip("/")
    if procedure.count("/") == 1 and all(procedure.split("/")):
        return f"{procedure} is not implemented by this Flyte control plane"
    return f"{path!r} names no procedure this Flyte control plane implements"
