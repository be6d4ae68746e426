"""The events relay (deploy/kubernetes/events-relay/relay.py, loaded as the local stack loads it)
against the real local issuer: its token, its cache and renewal, and what it passes back.

The control plane behind it is a small recorder here, so a test can make it answer 401, a refusal
header or nothing at all; tests/e2e/test_child_actions_http.py runs the relay against the real
front with authentication on.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from local_stack.issuer import Client, LocalIssuer
from local_stack.relay import LocalRelay, relay_module

pytestmark = pytest.mark.integration

CLIENT_ID = "data-plane"
SCOPE = "flyte/data-plane"
RECORD = "/flyteidl2.workflow.EventsProxyService/Record"
CACHE = "/flyteidl2.cacheservice.v2.CacheService"
# what Flyte's cache client calls (flyteplugins/.../catalog/cache_service/client.go)
CACHE_PROCEDURES = ("Get", "Put", "GetOrExtendReservation", "ReleaseReservation")


class Upstream:
    """Answers Record calls as told (status, extra headers), keeping what it received."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, str], bytes]] = []
        self.answers: list[tuple[int, dict[str, str]]] = []  # consumed one a call; then 200
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                upstream.received.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                status, headers = upstream.answers.pop(0) if upstream.answers else (200, {})
                reply = b"" if status == 200 else json.dumps({"code": "unauthenticated", "message": "no"}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/proto" if status == 200 else "application/json")
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}/prefix"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def issuer() -> Iterator[LocalIssuer]:
    local = LocalIssuer(audience="relay-test", clients=[Client(CLIENT_ID, "s3cret", (SCOPE,))]).start()
    yield local
    local.stop()


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    recorder = Upstream()
    yield recorder
    recorder.close()


def _relay(issuer: LocalIssuer, upstream_endpoint: str, secret_file: Path, secret: str = "s3cret") -> LocalRelay:
    secret_file.write_text(secret + "\n")
    return LocalRelay(
        upstream=upstream_endpoint,
        token_url=issuer.token_endpoint,
        client_id=CLIENT_ID,
        secret_file=secret_file,
        scopes=SCOPE,
    ).start()


@pytest.fixture
def relay(issuer, upstream, tmp_path) -> Iterator[LocalRelay]:
    running = _relay(issuer, upstream.endpoint, tmp_path / "secret")
    yield running
    running.stop()


def record(relay: LocalRelay, body: bytes = b"\x0a\x00", headers: dict[str, str] | None = None, *, path: str = RECORD):
    request = urllib.request.Request(
        relay.endpoint + path,
        data=body,
        method="POST",
        headers={"Content-Type": "application/proto", "Connect-Protocol-Version": "1", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def test_record_calls_are_forwarded_with_one_cached_token_of_the_data_plane_client(relay, upstream, issuer):
    granted = issuer.granted[CLIENT_ID]
    for _ in range(3):
        status, _, _ = record(relay, headers={"Authorization": "Bearer the-callers", "traceparent": "00-ab-cd-01"})
        assert status == 200
    assert issuer.granted[CLIENT_ID] == granted + 1  # one token, reused until near its expiry
    paths = {path for path, _, _ in upstream.received}
    assert paths == {"/prefix" + RECORD}  # the upstream's base path kept
    tokens = {headers["authorization"] for _, headers, _ in upstream.received}
    (token,) = tokens
    assert token.startswith("Bearer ") and token != "Bearer the-callers"
    claims = json.loads(_b64(token.split(".")[1]))
    assert (claims["sub"], claims["scope"]) == (CLIENT_ID, SCOPE)  # a client's token, the data-plane scope only
    assert all(headers["traceparent"] == "00-ab-cd-01" for _, headers, _ in upstream.received)
    assert all(body == b"\x0a\x00" for _, _, body in upstream.received)


def test_the_cache_clients_procedures_are_forwarded_to_the_same_procedure_with_the_token(relay, upstream):
    """Flyte's cache client is a plain http.DefaultClient too: its four procedures go through."""
    for name in CACHE_PROCEDURES:
        status, _, _ = record(relay, headers={"Authorization": "Bearer the-callers"}, path=f"/any/prefix{CACHE}/{name}")
        assert status == 200, name
    assert [path for path, _, _ in upstream.received] == [f"/prefix{CACHE}/{name}" for name in CACHE_PROCEDURES]
    assert all(headers["authorization"] != "Bearer the-callers" for _, headers, _ in upstream.received)
    assert relay.relay.forwarded == len(CACHE_PROCEDURES)


def test_anything_else_is_refused_without_calling_the_control_plane(relay, upstream):
    for path in (
        f"{CACHE}/Delete",
        f"{CACHE}/GetOrExtendReservations",
        "/flyteidl2.workflow.RunService/CreateRun",
        "/",
    ):
        status, _, body = record(relay, path=path)
        assert (status, json.loads(body)["code"]) == (404, "not_found"), path
    assert upstream.received == [] and relay.relay.forwarded == 0


def test_the_control_planes_answer_and_its_refusal_header_come_back_as_they_are(relay, upstream):
    upstream.answers = [(200, {"x-flyte-refused-events": '[{"index": 1, "code": "invalid_argument"}]'})]
    status, headers, body = record(relay)
    assert status == 200 and headers["x-flyte-refused-events"] == '[{"index": 1, "code": "invalid_argument"}]'
    upstream.answers = [(403, {}), (403, {})]
    status, headers, body = record(relay)
    assert status == 403 and headers["Content-Type"] == "application/json" and json.loads(body)["code"]


def test_a_401_renews_the_token_once_then_the_answer_stands(relay, upstream, issuer):
    record(relay)
    granted = issuer.granted[CLIENT_ID]
    upstream.answers = [(401, {})]
    assert record(relay)[0] == 200  # renewed, sent again, accepted
    assert issuer.granted[CLIENT_ID] == granted + 1
    upstream.answers = [(401, {}), (401, {})]
    assert record(relay)[0] == 401  # still refused with a fresh token: the executor sees the 401


def test_a_control_plane_out_of_reach_or_a_refused_login_is_503_unavailable(issuer, upstream, tmp_path):
    gone = Upstream()
    endpoint = gone.endpoint
    gone.close()
    unreachable = _relay(issuer, endpoint, tmp_path / "a")
    wrong_secret = _relay(issuer, upstream.endpoint, tmp_path / "b", secret="wrong")
    try:
        for relay in (unreachable, wrong_secret):
            status, _, body = record(relay)
            assert (status, json.loads(body)["code"]) == (503, "unavailable")
        assert upstream.received == []
    finally:
        unreachable.stop()
        wrong_secret.stop()


def test_the_relay_is_the_stdlib_script_the_cluster_runs():
    module = relay_module()
    assert Path(module.__file__).parts[-4:] == ("deploy", "kubernetes", "events-relay", "relay.py")
    assert module.RECORD_PROCEDURE == RECORD
    expected = (RECORD, *(f"{CACHE}/{name}" for name in CACHE_PROCEDURES))
    assert tuple(module.FORWARDED_PROCEDURES) == expected


def _b64(segment: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
