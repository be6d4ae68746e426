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

Given a TLS context, the same port also answers HTTPS (the first byte of a connection tells a TLS
handshake from an HTTP request): API Gateway is HTTPS only, and the flyte SDK sends tokens only
over TLS, while plain HTTP stays for curl and the tests that need no token.
"""

from __future__ import annotations

import base64
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
from typing import Any, cast

from local_stack.jwt_authorizer import JwtAuthorizer
from local_stack.lambda_runtime import Handler, LambdaContext, load_handler
from local_stack.routing import RouteTable
from local_stack.template import HttpRoute

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
    ) -> None:
        # exact routes, then the longest greedy prefix (/console/{proxy+} before /{proxy+}), as on API Gateway
        self._routes = RouteTable(routes=routes)
        self._authorizers = dict(authorizers or {})
        self._unknown_authorizers = {r.authorizer for r in routes if r.authorizer} - set(self._authorizers)
        if authorizers is not None and self._unknown_authorizers:
            raise ValueError(f"routes name authorizers the front was not given: {sorted(self._unknown_authorizers)}")
        self._authorizing = False
        self._handlers: dict[str, Handler] = {}
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

    def _request_handler_class(self):
        front = self

        class RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # Nagle + delayed ACK costs ~40 ms per keep-alive call

            def _serve(self) -> None:
                path, _, query = self.path.partition("?")
                headers = {name.lower(): value for name, value in self.headers.items()}
                body = self._read_body(headers)
                if body is None:
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
