"""Procedure registry and dispatch: the protocol checks every unary Connect call goes through.

A function declares the procedures it serves::

    router = ConnectRouter()

    @router.unary("/flyteidl2.workflow.RunService/CreateRun", CreateRunRequest)
    def create_run(request: CreateRunRequest) -> CreateRunResponse: ...

and ``router.dispatch(http_request)`` does the rest: method and protocol-version checks, codec
selection, bounded decompression, decoding, and mapping every failure to a Connect error body.
Nothing a client sends can produce a bare 500 or the code ``unknown``: unexpected exceptions are
logged and answered as ``internal``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message

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
from runplane.connect.errors import Code, ConnectError
from runplane.connect.streams import (
    decode_stream_request,
    stream_codec_of,
    stream_response,
    unsupported_stream_media_type,
)

logger = logging.getLogger(__name__)

Handler = Callable[[Message], Message]


@dataclass(frozen=True)
class Procedure:
    path: str
    request_type: type[Message]
    handler: Handler
    streaming: bool = False  # a server stream: the handler returns the messages to send


class ConnectRouter:
    def __init__(self) -> None:
        self._procedures: dict[str, Procedure] = {}

    @property
    def paths(self) -> list[str]:
        return sorted(self._procedures)

    def unary(self, path: str, request_type: type[Message]) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            if path in self._procedures:
                raise ValueError(f"procedure {path} registered twice")
            self._procedures[path] = Procedure(path, request_type, handler)
            return handler

        return register

    def mount(
        self,
        procedures: dict[str, tuple[type[Message], Callable[[Any, Message], Any]]],
        service: Callable[[], Any],
        *,
        streaming: bool = False,
    ) -> None:
        """Serve each ``path -> (request type, unbound service method)`` with the service that
        ``service()`` returns (built lazily: settings and clients on the first request)."""
        register = self.server_stream if streaming else self.unary
        for path, (request_type, method) in procedures.items():
            register(path, request_type)(lambda request, method=method: method(service(), request))

    def server_stream(self, path: str, request_type: type[Message]) -> Callable[[Callable], Callable]:
        """Register a server-streaming procedure; its handler returns a list of messages."""

        def register(handler: Callable) -> Callable:
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
        except ConnectError as error:
            if error.code in (Code.INTERNAL, Code.UNAVAILABLE, Code.DATA_LOSS):
                logger.error("%s failed: %s", request.path, error.message)
            return error_response(error)
        except UnsupportedMediaType as exc:
            return HttpResponse(
                status=415,
                body=ConnectError(Code.INVALID_ARGUMENT, f"unsupported content-type {str(exc)!r}").to_json(),
                headers={"content-type": "application/json", "accept-post": ACCEPT_POST},
            )
        except Exception:  # the last line of defence: never let a client see a bare 500
            logger.exception("unhandled error in %s", request.path)
            return error_response(ConnectError(Code.INTERNAL, "internal error"))

    def _dispatch_stream(self, procedure: Procedure, request: HttpRequest) -> HttpResponse:
        """Errors of a stream travel in its end-of-stream frame, with HTTP 200."""
        codec = stream_codec_of(request)
        if codec is None:
            return unsupported_stream_media_type(request.headers.get("content-type", ""))
        messages: list[Message] = []
        try:
            message = decode_stream_request(request, codec, procedure.request_type)
            messages = list(procedure.handler(message))
        except ConnectError as error:
            return stream_response(messages, codec, error=error)
        except Exception:
            logger.exception("unhandled error in %s", request.path)
            return stream_response(messages, codec, error=ConnectError(Code.INTERNAL, "internal error"))
        return stream_response(messages, codec)

    def _dispatch(self, request: HttpRequest) -> HttpResponse:
        procedure = self._procedures.get(request.path)
        if procedure is None:
            raise ConnectError(Code.UNIMPLEMENTED, f"{request.path} is not implemented")
        if request.method != "POST":
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
        response = procedure.handler(message)
        return encode_message(response, codec, accept_encoding=request.headers.get("accept-encoding", ""))
