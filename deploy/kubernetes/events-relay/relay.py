"""The events relay: Flyte's executor's events and cache calls to the control plane, with the data plane's credentials.

Flyte's executor sends every TaskAction transition to ``EventsProxyService/Record`` with a plain
``http.DefaultClient`` and no credentials (flyteorg/flyte ``executor/setup.go``), and records the
event *before* it writes the TaskAction's status: an event the API refuses (401) means no status is
ever written. Its task cache client is made the same way (``cachecatalog.NewHTTPClient`` in
setup.go, ``NewClient(http.DefaultClient, ...)`` in
``flyteplugins/go/tasks/pluginmachinery/catalog/cache_service/client.go``): no credentials either.
The control plane's Record and CacheService routes require a token with the data-plane scope. This
relay sits between them inside the cluster: the executor's ``EventsServiceURL`` and
``cacheServiceURL`` (or the ``BaseURL`` setup.go prefers for both) point at it, and it forwards each
call to the control plane with a token of a dedicated data-plane client (OAuth client credentials;
not a person's token, and scoped to the data plane only), cached until close to its expiry.

What it accepts and answers:

- ``POST <any prefix><procedure>`` for the procedures in ``FORWARDED_PROCEDURES`` only: Record, and
  the four CacheService procedures the Go cache client calls (Get, Put, GetOrExtendReservation,
  ReleaseReservation; it never calls Delete), Connect unary, binary or JSON, whatever the executor
  sends. The call goes to the same procedure under ``RELAY_UPSTREAM``. Anything else is answered
  with a Connect error without contacting the control plane: 404 ``not_found`` for another path,
  405 ``unimplemented`` for another method, 413 ``resource_exhausted`` for a body over
  ``RELAY_MAX_BODY_BYTES``, 411 ``invalid_argument`` for a body without a length;
- the control plane's response is passed back as it is: status, body, and the headers that are not
  hop-by-hop (``Content-Type``, ``x-flyte-refused-events`` naming the events of a batch that were
  refused, Connect's headers), so the executor sees exactly what the API decided;
- the client's own ``Authorization`` is never forwarded (the relay's token replaces it); a 401 from
  the control plane renews the token once and sends the call again;
- a control plane that cannot be reached, or a token endpoint that refuses, is a 503
  ``unavailable``: the executor retries the batch, and writes no status until it is accepted.

Stdlib only, one file: it runs from a ConfigMap on a stock ``python:3.13-slim`` image
(deploy/kubernetes/events-relay), and the local stack runs this same file (local_stack/relay.py).

Settings (environment): ``RELAY_UPSTREAM`` (the API's base URL), ``RELAY_TOKEN_URL`` (the identity
provider's token endpoint), ``RELAY_CLIENT_ID``, ``RELAY_CLIENT_SECRET_FILE`` (a mounted secret),
``RELAY_SCOPES`` (space-separated; empty: all the client's), ``RELAY_PORT`` (8080),
``RELAY_MAX_BODY_BYTES``, ``RELAY_CA_FILE`` (an extra CA to trust; empty: the system's).
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import os
import ssl
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

logger = logging.getLogger("events-relay")

RECORD_PROCEDURE = "/flyteidl2.workflow.EventsProxyService/Record"
CACHE_SERVICE = "/flyteidl2.cacheservice.v2.CacheService"
# Exactly what Flyte's executor calls without credentials: Record (setup.go's eventsClient) and the
# cache client's procedures (cache_service/client.go: Get, Put (Put and Update), GetOrExtendReservation,
# ReleaseReservation). Nothing else of the API is reachable through the relay.
FORWARDED_PROCEDURES = (
    RECORD_PROCEDURE,
    f"{CACHE_SERVICE}/Get",
    f"{CACHE_SERVICE}/Put",
    f"{CACHE_SERVICE}/GetOrExtendReservation",
    f"{CACHE_SERVICE}/ReleaseReservation",
)
# API Gateway's payload limit: a larger body could never be accepted upstream. 400 events of the
# executor's batch are well under 1 MiB.
DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
# A cached token is renewed this long before it expires, so none expires in flight.
TOKEN_RENEWAL_MARGIN_SECONDS = 60
# The executor's batch flush times out after 30 s (event_batcher.go: eventFlushTimeout); the relay
# gives up on the control plane before that, so the executor gets an answer it can act on.
UPSTREAM_TIMEOUT_SECONDS = 25.0
TOKEN_TIMEOUT_SECONDS = 10.0
# Request headers worth passing on (Connect's, compression, tracing); everything else, and above all
# the caller's Authorization, stays here.
FORWARDED_REQUEST_HEADERS = (
    "content-type",
    "content-encoding",
    "accept-encoding",
    "connect-protocol-version",
    "connect-timeout-ms",
    "connect-content-encoding",
    "connect-accept-encoding",
    "traceparent",
    "tracestate",
    "user-agent",
)
# Response headers that belong to one hop (RFC 9110 7.6.1) or that the relay's server sets itself.
HOP_BY_HOP = frozenset(
    ("connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "content-length", "date", "server")
)


class Unavailable(Exception):
    """The control plane or the token endpoint cannot be used right now (the caller retries)."""


class TokenSource:
    """Client-credentials tokens of the relay's data-plane client, cached until near their expiry."""

    def __init__(
        self, *, token_url: str, client_id: str, client_secret: str, scopes: str, context: ssl.SSLContext | None
    ) -> None:
        self.token_url = token_url
        self._basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
        self._scopes = scopes
        self._context = context
        self._lock = threading.Lock()
        self._token = ""
        self._expires_at = 0.0
        self.granted = 0  # tokens obtained so far (how a test sees the cache at work)

    def token(self, *, renew: bool = False) -> str:
        with self._lock:
            if renew or not self._token or time.monotonic() > self._expires_at - TOKEN_RENEWAL_MARGIN_SECONDS:
                self._token, lifetime = self._grant()
                self._expires_at = time.monotonic() + lifetime
                self.granted += 1
            return self._token

    def _grant(self) -> tuple[str, float]:
        form = {"grant_type": "client_credentials"}
        if self._scopes:
            form["scope"] = self._scopes
        request = urllib.request.Request(
            self.token_url,
            data=urllib.parse.urlencode(form).encode(),
            method="POST",
            headers={"Authorization": f"Basic {self._basic}", "Content-Type": "application/x-www-form-urlencoded"},
        )
        try:
            with urllib.request.urlopen(request, timeout=TOKEN_TIMEOUT_SECONDS, context=self._context) as response:
                document = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise Unavailable(
                f"the token endpoint refused the relay's client: {exc.code} {exc.read()[:200]!r}"
            ) from None
        except (OSError, ValueError) as exc:
            raise Unavailable(f"the token endpoint cannot be reached: {exc}") from None
        return str(document["access_token"]), float(document.get("expires_in") or 3600)


class Upstream:
    """The control plane's forwarded procedures, one kept-alive connection per relay thread."""

    def __init__(self, base_url: str, *, context: ssl.SSLContext | None) -> None:
        parsed = urllib.parse.urlsplit(base_url.rstrip("/"))
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"RELAY_UPSTREAM must be an http(s) URL, got {base_url!r}")
        self._parsed = parsed
        self.prefix = parsed.path  # the API's stage or path prefix, before the procedure
        self._context = context
        self._local = threading.local()

    def _connection(self) -> http.client.HTTPConnection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            host, port = self._parsed.hostname, self._parsed.port
            if self._parsed.scheme == "https":
                connection = http.client.HTTPSConnection(
                    host, port, timeout=UPSTREAM_TIMEOUT_SECONDS, context=self._context
                )
            else:
                connection = http.client.HTTPConnection(host, port, timeout=UPSTREAM_TIMEOUT_SECONDS)
            self._local.connection = connection
        return connection

    def post(self, procedure: str, body: bytes, headers: dict[str, str]) -> tuple[int, list[tuple[str, str]], bytes]:
        """(status, headers, body) of the control plane's answer to ``procedure``; raises Unavailable."""
        for attempt in range(2):  # a kept-alive connection the other side closed is opened again once
            connection = self._connection()
            try:
                connection.request("POST", self.prefix + procedure, body=body, headers=headers)
                response = connection.getresponse()
                payload = response.read()
                if response.will_close:
                    self._drop()
                return response.status, response.getheaders(), payload
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                self._drop()
                if attempt == 1:
                    raise Unavailable(f"the control plane closed the connection: {exc}") from None
            except (OSError, http.client.HTTPException) as exc:
                self._drop()
                raise Unavailable(f"the control plane cannot be reached: {exc}") from None
        raise AssertionError("unreachable")

    def _drop(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
        self._local.connection = None


class Relay:
    """Forwards the executor's calls: the token, the upstream, the limits."""

    def __init__(self, *, upstream: Upstream, tokens: TokenSource, max_body_bytes: int) -> None:
        self.upstream = upstream
        self.tokens = tokens
        self.max_body_bytes = max_body_bytes
        self.forwarded = 0  # calls passed on (whatever the control plane answered)

    def forward(
        self, procedure: str, body: bytes, request_headers: dict[str, str]
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        headers = {name: value for name, value in request_headers.items() if name in FORWARDED_REQUEST_HEADERS}
        headers.setdefault("content-type", "application/proto")
        renew = False
        for _ in range(2):
            headers["authorization"] = f"Bearer {self.tokens.token(renew=renew)}"
            status, response_headers, payload = self.upstream.post(procedure, body, headers)
            if status != 401:
                break
            renew = True  # revoked or expired early: one fresh token, then the answer stands
        self.forwarded += 1
        return status, response_headers, payload


def procedure_of(path: str) -> str | None:
    """The forwarded procedure ``path`` ends with (after any prefix), or None."""
    path = path.split("?", 1)[0]
    for procedure in FORWARDED_PROCEDURES:
        if path.endswith(procedure):
            return procedure
    return None


def connect_error(status: int, code: str, message: str) -> tuple[int, list[tuple[str, str]], bytes]:
    body = json.dumps({"code": code, "message": message}).encode()
    return status, [("Content-Type", "application/json")], body


def handler_class(relay: Relay) -> type[BaseHTTPRequestHandler]:
    class RelayHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # the executor's client keeps its connections alive

        def do_POST(self) -> None:
            procedure = procedure_of(self.path)
            if procedure is None:
                self._drain()
                served = ", ".join(FORWARDED_PROCEDURES)
                self._answer(*connect_error(404, "not_found", f"the events relay serves {served} only"))
                return
            length = self.headers.get("Content-Length")
            if length is None or not length.isdigit():
                self.close_connection = True
                self._answer(*connect_error(411, "invalid_argument", "a call needs a Content-Length"))
                return
            if int(length) > relay.max_body_bytes:
                self.close_connection = True  # the body is left unread: the connection cannot be reused
                self._answer(
                    *connect_error(413, "resource_exhausted", f"a call is at most {relay.max_body_bytes} bytes")
                )
                return
            body = self.rfile.read(int(length))
            try:
                answer = relay.forward(procedure, body, {name.lower(): value for name, value in self.headers.items()})
            except Unavailable as exc:
                logger.warning("%s not forwarded: %s", procedure, exc)
                answer = connect_error(503, "unavailable", str(exc))
            self._answer(*answer)

        def _refuse_method(self) -> None:
            self._drain()
            status, headers, body = connect_error(405, "unimplemented", "the events relay answers POST only")
            self._answer(status, [*headers, ("Allow", "POST")], body)

        do_GET = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _refuse_method

        def _drain(self) -> None:
            length = self.headers.get("Content-Length")
            if length and length.isdigit() and int(length) <= relay.max_body_bytes:
                self.rfile.read(int(length))
            elif length:
                self.close_connection = True

        def _answer(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
            self.send_response(status)
            for name, value in headers:
                if name.lower() not in HOP_BY_HOP:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            logger.debug("%s %s", self.address_string(), format % args)

    return RelayHandler


def ssl_context(ca_file: str) -> ssl.SSLContext | None:
    return ssl.create_default_context(cafile=ca_file) if ca_file else None


def relay_from(settings: dict[str, str]) -> Relay:
    """A relay configured from ``RELAY_*`` settings (the environment, or a dictionary in tests)."""
    context = ssl_context(settings.get("RELAY_CA_FILE", ""))
    with open(settings["RELAY_CLIENT_SECRET_FILE"]) as secret_file:
        secret = secret_file.read().strip()
    tokens = TokenSource(
        token_url=settings["RELAY_TOKEN_URL"],
        client_id=settings["RELAY_CLIENT_ID"],
        client_secret=secret,
        scopes=settings.get("RELAY_SCOPES", ""),
        context=context,
    )
    return Relay(
        upstream=Upstream(settings["RELAY_UPSTREAM"], context=context),
        tokens=tokens,
        max_body_bytes=int(settings.get("RELAY_MAX_BODY_BYTES") or DEFAULT_MAX_BODY_BYTES),
    )


def server_for(relay: Relay, *, host: str, port: int) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((host, port), handler_class(relay))
    server.daemon_threads = True
    return server


def main() -> None:
    logging.basicConfig(level=os.environ.get("RELAY_LOG_LEVEL", "INFO"), format="%(asctime)s %(levelname)s %(message)s")
    settings = dict(os.environ)
    relay = relay_from(settings)
    server = server_for(relay, host=settings.get("RELAY_HOST", "0.0.0.0"), port=int(settings.get("RELAY_PORT", "8080")))
    logger.info("events relay on %s:%s -> %s", *server.server_address[:2], settings["RELAY_UPSTREAM"])
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    sys.exit(main())
