"""A local API Gateway HTTP API: HTTP requests -> payload-v2 events -> the very same handlers.

Routes come from template.yaml, each with its authorizer and scopes. As on AWS: an unrouted
request gets 404 ``{"message":"Not Found"}``, a body over 10 MB gets 413, a handler that raises
gets 500 ``{"message":"Internal Server Error"}``, text bodies arrive as text and everything else
base64-encoded. While ``authorizing`` is on, a route with a JWT authorizer is checked as API
Gateway checks it (``local_stack.jwt_authorizer``: 401/403 before any handler runs) and its
handler gets the token's claims in ``requestContext.authorizer.jwt``; off, every route is open,
as an API without authorizers. It is a switch at run time: the handlers never change. Routes are
picked as API Gateway picks them (``local_stack.routing``: exact, then the longest greedy prefix),
and a greedy route's handler gets its variable in ``pathParameters``.

The watch paths the template sends to the streaming function (``StreamRoute``: CloudFront's
behaviours for the function URL in RESPONSE_STREAM mode) are served as they are deployed: the
function's own token check (``runplane.connect.jwt_check``, with the scopes of the same path's
HTTP API route) while ``authorizing`` is on, then its answer chunked, each frame written and
flushed as the watch yields it, and cut off after ``stream_timeout_seconds`` (the function's
timeout: the connection closes mid-stream, with no end frame, as Lambda cuts a stream).

Given a TLS context, the same port also answers HTTPS (the first byte of a connection tells a TLS
handshake from an HTTP request): API Gateway is HTTPS only, and the flyte SDK sends tokens only
over TLS, while plain HTTP stays for curl and the tests that need no token.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import socket
import ssl
import threading
import time
import urllib.parse
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol, cast

from local_stack.jwt_authorizer import JwtAuthorizer
from local_stack.lambda_runtime import Handler, LambdaContext, load_handler
from local_stack.routing import RouteTable
from local_stack.template import HttpRoute, StreamRoute

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 10 * 1024 * 1024  # HTTP API payload quota
_TEXT_TYPES = ("application/json", "text/", "application/xml", "application/x-www-form-urlencoded")
TLS_HANDSHAKE = 0x16  # the first byte of a TLS record carrying a ClientHello
# How long a new connection may stay silent before its first byte tells HTTP from TLS.
FIRST_BYTE_TIMEOUT_SECONDS = 30.0


class ApiGatewayFront:
    def __init__(
        self,
        *,
        routes: list[HttpRoute],
        host: str = "127.0.0.1",
        port: int = 8080,
        authorizers: Mapping[str, JwtAuthorizer] | None = None,
        tls: ssl.SSLContext | None = None,
        streams: list[StreamRoute] | None = None,
        stream_timeout_seconds: float = 900.0,
    ) -> None:
        """``streams``: the paths served by the streaming function instead of their HTTP API
        route; ``stream_timeout_seconds``: when such a stream is cut off (its function's timeout)."""
        # exact routes, then the longest greedy prefix (/console/{proxy+} before /{proxy+}), as on API Gateway
        self._routes = RouteTable(routes=routes)
        self._authorizers = dict(authorizers or {})
        self._unknown_authorizers = {r.authorizer for r in routes if r.authorizer} - set(self._authorizers)
        if authorizers is not None and self._unknown_authorizers:
            raise ValueError(f"routes name authorizers the front was not given: {sorted(self._unknown_authorizers)}")
        self._authorizing = False
        self._handlers: dict[str, Handler] = {}
        self._streams = {route.path: route for route in streams or []}
        self._stream_entries: dict[str, StreamEntry] = {}
        self._token_checks: dict[str, Any] = {}
        self.stream_timeout_seconds = stream_timeout_seconds
        self._server = _FrontServer((host, port), self._request_handler_class(), tls=tls)
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        host, port = cast("tuple[str, int]", self._server.server_address[:2])  # AF_INET
        return f"http://{host}:{port}"

    @property
    def authorizing(self) -> bool:
        """Whether routes with an authorizer check tokens; read per request, so tests switch it
        on and off around a block."""
        return self._authorizing

    @authorizing.setter
    def authorizing(self, enabled: bool) -> None:
        if enabled and self._unknown_authorizers:
            raise ValueError(f"no authorizer given for {sorted(self._unknown_authorizers)}")
        self._authorizing = enabled

    @property
    def tls_endpoint(self) -> str | None:
        """The same front over HTTPS (only with a TLS context)."""
        if self._server.tls is None:
            return None
        return "https" + self.endpoint.removeprefix("http")

    def start(self) -> ApiGatewayFront:
        for route in self._routes.routes:  # import at start, like Lambda's init phase
            self._handlers.setdefault(route.handler, load_handler(route.handler))
        for stream in self._streams.values():
            self._stream_entries.setdefault(stream.entry, cast("StreamEntry", load_handler(stream.entry)))
        self._thread = threading.Thread(target=self._server.serve_forever, name="api-gateway", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def invoke(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        match = self._routes.match(method, path)
        if match is None:
            return _json(404, {"message": "Not Found"})
        route = match.route
        if len(body) > MAX_BODY_BYTES:
            return _json(413, {"message": "Request Entity Too Large"})
        authorizer_context = None
        if self.authorizing and route.authorizer is not None:
            decision = self._authorizers[route.authorizer].authorize(headers, route.scopes)
            if not decision.allowed:
                return decision.status, decision.headers, decision.body
            authorizer_context = decision.context
        event = payload_v2_event(
            method=method,
            path=path,
            query=query,
            headers=headers,
            body=body,
            authorizer=authorizer_context,
            route_key=match.route_key,
            path_parameters=match.path_parameters,
        )
        try:
            result = self._handlers[route.handler](event, LambdaContext(function_name=route.function))
        except Exception:
            logger.exception("%s raised", route.function)
            return _json(500, {"message": "Internal Server Error"})
        return _response_from_result(result)

    def streamed(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Any:
        """The streaming function's answer (a ``StreamedResponse``) for a streamed path, or a
        buffered ``(status, headers, body)`` refusal; None for a path served by the HTTP API."""
        stream = self._streams.get(path)
        if stream is None or method != "POST":
            return None
        if len(body) > MAX_BODY_BYTES:
            return _json(413, {"message": "Request Entity Too Large"})
        claims: dict[str, str] | None = None
        match = self._routes.match(method, path)
        route = match.route if match else None
        if self.authorizing and route is not None and route.authorizer is not None:
            from runplane.connect.jwt_check import Refused

            try:
                claims = self._token_check(route.authorizer).claims(headers, route.scopes)
            except Refused as refusal:
                return _json(refusal.status, {"message": "Unauthorized" if refusal.status == 401 else "Forbidden"})
        return self._stream_entries[stream.entry](method=method, path=path, headers=headers, body=body, claims=claims)

    def _token_check(self, name: str) -> Any:
        """The streaming function's own check (``runplane.connect.jwt_check``), configured as the
        authorizer ``name`` (issuer, audiences); one per authorizer, its key cache kept."""
        if name not in self._token_checks:
            from runplane.connect.jwt_check import TokenCheck

            authorizer = self._authorizers[name]
            self._token_checks[name] = TokenCheck(
                issuer=authorizer.config.issuer,
                audiences=authorizer.config.audience,
                fetch_json=authorizer._fetch_json,  # the local issuer's CA
            )
        return self._token_checks[name]

    def _request_handler_class(self):
        front = self

        class RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # Nagle + delayed ACK costs ~40 ms per keep-alive call

            def _serve(self) -> None:
                path, _, query = self.path.partition("?")
                headers = {name.lower(): value for name, value in self.headers.items()}
                body = self._read_body(headers)
                streamed = front.streamed(self.command, path, headers, body) if body is not None else None
                if streamed is not None and not isinstance(streamed, tuple):
                    self._write_streamed(streamed)
                    return
                if streamed is not None:
                    status, response_headers, payload = streamed
                elif body is None:
                    status, response_headers, payload = _json(413, {"message": "Request Entity Too Large"})
                    self.close_connection = True
                else:
                    status, response_headers, payload = front.invoke(self.command, path, query, headers, body)
                try:
                    self.send_response(status)
                    for name, value in response_headers.items():
                        if name.lower() not in ("content-length", "connection"):
                            self.send_header(name, value)
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client left, e.g. a page closed mid long-poll
                    self.close_connection = True

            def _write_streamed(self, response: Any) -> None:
                """Chunked, a frame a chunk, flushed as it comes; cut off at the time limit. A
                watch that waits between frames notices the cut (or a client that left) at its
                next frame, and its generator is closed there."""
                deadline = time.monotonic() + front.stream_timeout_seconds
                cut = threading.Event()
                timer = threading.Timer(front.stream_timeout_seconds, self._cut, args=(cut,))
                timer.daemon = True
                timer.start()
                try:
                    self.send_response(response.status)
                    for name, value in response.headers.items():
                        if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                            self.send_header(name, value)
                    self.send_header("transfer-encoding", "chunked")
                    self.end_headers()
                    self.wfile.flush()
                    for chunk in response.chunks:
                        if cut.is_set() or time.monotonic() >= deadline:
                            raise ConnectionAbortedError("stream time limit")
                        if chunk:
                            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                            self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                except OSError:  # the limit, or the client left
                    self.close_connection = True
                finally:
                    timer.cancel()
                    response.chunks.close()

            def _cut(self, cut: threading.Event) -> None:
                """The time limit: the connection closes under the stream, as Lambda ends an
                invocation at its timeout (the client sees the stream end without its end frame)."""
                cut.set()
                with contextlib.suppress(OSError):  # already closed
                    self.connection.shutdown(socket.SHUT_RDWR)

            def _read_body(self, headers: dict[str, str]) -> bytes | None:
                if "chunked" in headers.get("transfer-encoding", "").lower():
                    chunks: list[bytes] = []
                    size = 0
                    while True:
                        length = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if length == 0:
                            while self.rfile.readline().strip():  # trailers
                                pass
                            return b"".join(chunks)
                        size += length
                        if size > MAX_BODY_BYTES:
                            return None
                        chunks.append(self.rfile.read(length))
                        self.rfile.readline()
                length = int(headers.get("content-length") or 0)
                if length > MAX_BODY_BYTES:
                    return None
                return self.rfile.read(length) if length else b""

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _serve

            def log_message(self, format: str, *args: Any) -> None:
                logger.debug("%s - %s", self.address_string(), format % args)

        return RequestHandler


class StreamEntry(Protocol):
    """The streaming function's in-process entry (``functions.read_runs.stream.serve``)."""

    def __call__(
        self, *, method: str, path: str, headers: dict[str, str], body: bytes, claims: dict[str, str] | None
    ) -> Any: ...


def payload_v2_event(
    *,
    method: str,
    path: str,
    query: str,
    headers: dict[str, str],
    body: bytes,
    authorizer: dict[str, Any] | None = None,
    route_key: str | None = None,
    path_parameters: dict[str, str] | None = None,
) -> dict[str, Any]:
    now = datetime.now(UTC)
    route_key = route_key or f"{method} {path}"
    content_type = headers.get("content-type", "")
    is_text = not headers.get("content-encoding") and content_type.startswith(_TEXT_TYPES)
    if is_text:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            is_text = False
    request_context: dict[str, Any] = {} if authorizer is None else {"authorizer": authorizer}
    # as API Gateway: present only for a route with path variables, and only then
    parameters: dict[str, Any] = {"pathParameters": path_parameters} if path_parameters else {}
    return {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": query,
        **({"queryStringParameters": _query_parameters(query)} if query else {}),
        "headers": headers,
        **parameters,
        "requestContext": {
            **request_context,
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": headers.get("host", "127.0.0.1"),
            "domainPrefix": "local",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": uuid.uuid4().hex,
            "routeKey": route_key,
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(time.time() * 1000),
        },
        "body": text if is_text else base64.b64encode(body).decode(),
        "isBase64Encoded": not is_text,
    }


class _FrontServer(ThreadingHTTPServer):
    """HTTP, and HTTPS on the same port when given a TLS context: each connection's first byte
    decides (a TLS record starts with 0x16, an HTTP request with a method's letter)."""

    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], *, tls: ssl.SSLContext | None
    ) -> None:
        self.tls = tls
        super().__init__(address, handler)

    def finish_request(self, request: Any, client_address: Any) -> None:  # runs in the connection's thread
        if self.tls is None or not _starts_with_tls(request):
            super().finish_request(request, client_address)
            return
        try:
            connection = self.tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            logger.debug("TLS handshake with %s failed: %s", client_address, exc)
            return
        try:
            super().finish_request(connection, client_address)
        finally:
            self.shutdown_request(connection)


def _starts_with_tls(connection: socket.socket) -> bool:
    try:
        connection.settimeout(FIRST_BYTE_TIMEOUT_SECONDS)
        first = connection.recv(1, socket.MSG_PEEK)
    except OSError:
        return False
    finally:
        connection.settimeout(None)
    return first[:1] == bytes([TLS_HANDSHAKE])


def _query_parameters(query: str) -> dict[str, str]:
    """Payload 2.0's ``queryStringParameters``: repeated names joined with commas."""
    parsed = urllib.parse.parse_qs(query, keep_blank_values=True)
    return {name: ",".join(values) for name, values in parsed.items()}


def _response_from_result(result: Any) -> tuple[int, dict[str, str], bytes]:
    if not isinstance(result, dict) or "statusCode" not in result:
        return 200, {"content-type": "application/json"}, json.dumps(result).encode()
    body = result.get("body") or ""
    payload = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
    return int(result["statusCode"]), dict(result.get("headers") or {}), payload


def _json(status: int, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    return status, {"content-type": "application/json"}, json.dumps(body).encode()
