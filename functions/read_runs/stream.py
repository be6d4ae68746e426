"""The streaming entry point of read_runs (ReadRunsStreamFunction): the watches, frame by frame.

On AWS it runs behind a Lambda function URL in RESPONSE_STREAM mode, under the AWS Lambda Web
Adapter (the layer starts ``python -m functions.read_runs.stream``, an HTTP server on
``AWS_LWA_PORT``, and streams what it writes back to the caller); CloudFront sends the watch
paths there and everything else to the HTTP API, so clients keep one host (docs/load-model.md,
"Watches"). A function URL has no JWT authorizer, so the function checks the token itself, as the
HTTP API's authorizer does (``runplane.connect.jwt_check``: issuer, audiences, scopes), before the
router's project limit. The local front calls ``serve`` in-process with the same check.

Every answer is chunked: each frame is written and flushed as the watch yields it, and a client
that leaves stops its watch at the next frame.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from functions.read_runs.handler import ACTIONS, STATE, STREAMS
from functions.read_runs.service import RunReader
from runplane.aws.blobs import BlobStore
from runplane.connect.codec import HttpRequest
from runplane.connect.jwt_check import Refused, TokenCheck
from runplane.connect.pages import PageTokens
from runplane.connect.router import ConnectRouter, StreamedResponse
from runplane.ops.metrics import function_metrics
from runplane.ops.settings import read_settings
from runplane.table.actions import ActionStore

# The watches the SDK holds inside a task need the data-plane scope (as their HTTP API routes do);
# the RunService watches the user scope.
DATA_PLANE_PATHS = frozenset({f"{ACTIONS}/WatchForUpdates", f"{STATE}/Watch"})
DEFAULT_PORT = 8080  # the Lambda Web Adapter's default AWS_LWA_PORT
READY_PATH = "/ready"  # AWS_LWA_READINESS_CHECK_PATH

metrics = function_metrics("read_runs")  # EMF lines, written as each stream ends

router = ConnectRouter()


@cache
def reader() -> RunReader:
    settings = read_settings()
    return RunReader(
        store=ActionStore(table_name=settings.actions_table, blobs=BlobStore()),
        tokens=PageTokens(secret=settings.page_token_secret.encode()),
        watch_window_seconds=settings.watch_window_seconds,
        streaming=True,
        change_poll_seconds=settings.change_poll_seconds,
        namespace=settings.namespace,
        run_index=settings.run_index,
    )


router.mount(STREAMS, reader, streaming=True)


def required_scopes(path: str, *, user_scope: str, data_plane_scope: str) -> tuple[str, ...]:
    return (data_plane_scope,) if path in DATA_PLANE_PATHS else (user_scope,)


def serve(
    *, method: str, path: str, headers: Mapping[str, str], body: bytes, claims: Mapping[str, str] | None = None
) -> StreamedResponse:
    """One request (``headers`` lower-cased; ``claims``: the verified token's, when checked)."""
    request = HttpRequest(method=method, path=path, headers=dict(headers), body=body, claims=dict(claims or {}))
    response = router.dispatch_streamed(request)
    return StreamedResponse(response.status, response.headers, _flushing(response.chunks))


def _flushing(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """The chunks, then the metrics of the stream: an invocation under the adapter serves one
    request, but the process lives on, so each stream flushes its own."""
    try:
        yield from chunks
    finally:
        metrics.flush()


@cache
def token_check(issuer: str) -> TokenCheck:
    """One issuer's check, with AUTH_AUDIENCES (comma-separated) as the template sets them."""
    audiences = [a.strip() for a in os.environ["AUTH_AUDIENCES"].split(",") if a.strip()]
    return TokenCheck(issuer=issuer, audiences=audiences)


def issuer_of(path: str) -> str:
    """As the HTTP API's authorizers: the pods' watches (RunToken) trust the run tokens' issuer
    when there is one (RUN_TOKEN_ISSUER), every other path the identity provider (AUTH_ISSUER)."""
    run_tokens = os.environ.get("RUN_TOKEN_ISSUER", "")
    return run_tokens if path in DATA_PLANE_PATHS and run_tokens else os.environ["AUTH_ISSUER"]


def authorized_claims(path: str, headers: Mapping[str, str]) -> dict[str, str]:
    """The token's claims, checked as the HTTP API's authorizer checks them; raises ``Refused``."""
    scopes = required_scopes(
        path, user_scope=os.environ["AUTH_USER_SCOPE"], data_plane_scope=os.environ["AUTH_DATA_PLANE_SCOPE"]
    )
    return token_check(issuer_of(path)).claims(headers, scopes)


def write_streamed(handler: BaseHTTPRequestHandler, response: StreamedResponse) -> None:
    """Write an answer chunked, flushing each frame; a client that leaves closes the stream."""
    try:
        handler.send_response(response.status)
        for name, value in response.headers.items():
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                handler.send_header(name, value)
        handler.send_header("transfer-encoding", "chunked")
        handler.end_headers()
        for chunk in response.chunks:
            if chunk:
                handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                handler.wfile.flush()
        handler.wfile.write(b"0\r\n\r\n")
        handler.wfile.flush()
    except OSError:  # the client left (a dropped connection, the platform's limit)
        handler.close_connection = True
    finally:
        close = getattr(response.chunks, "close", None)
        if close is not None:
            close()  # stops the watch's generator where it is


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # the adapter's readiness check
        self.send_response(200 if self.path == READY_PATH else 404)
        self.send_header("content-length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        headers = {name.lower(): value for name, value in self.headers.items()}
        body = self.rfile.read(int(headers.get("content-length") or 0))
        try:
            claims = authorized_claims(self.path, headers)
        except Refused as refusal:
            message = b'{"message":"Unauthorized"}' if refusal.status == 401 else b'{"message":"Forbidden"}'
            self.send_response(refusal.status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(message)))
            self.end_headers()
            self.wfile.write(message)
            return
        write_streamed(self, serve(method="POST", path=self.path, headers=headers, body=body, claims=claims))

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the router logs what matters; one line per request would double the log bill


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ.get("AWS_LWA_PORT", DEFAULT_PORT))), _Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
