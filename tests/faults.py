"""A fault-injecting proxy in front of the real kube-apiserver.

Clients talk plain HTTP to the proxy; it forwards to the API server over HTTPS with the admin
token. For the requests a ``FaultPlan`` picks, it answers 500 or 429 itself, or forwards the request
and then holds the response past the client's timeout (so the server *did* act: a retry meets the
result, e.g. a 409 on create). Deterministic, so a test knows every fault ends.
"""

from __future__ import annotations

import http.client
import ssl
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import cast
from urllib.parse import urlparse


@dataclass
class FaultPlan:
    """Fail the first ``failures_per_request`` times a (method, path) is seen, cycling through
    ``kinds``; ``methods`` limits which requests are faulted."""

    failures_per_request: int = 2
    kinds: tuple[str, ...] = ("500", "429", "timeout")
    methods: tuple[str, ...] = ("POST", "GET", "DELETE")
    timeout_hold_seconds: float = 1.5
    seen: Counter = field(default_factory=Counter)
    injected: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fault_for(self, method: str, path: str, body: bytes) -> str | None:
        if method not in self.methods or "/taskactions" not in path:
            return None
        with self.lock:
            key = (method, path, body[:200])  # one create differs from another by its body
            count = self.seen[key]
            self.seen[key] += 1
            if count >= self.failures_per_request:
                return None
            kind = self.kinds[(sum(self.injected.values())) % len(self.kinds)]
            self.injected[kind] += 1
            return kind


class FaultyApiServerProxy:
    def __init__(self, *, upstream: str, token: str, ca_file: Path, plan: FaultPlan) -> None:
        self.plan = plan
        target = urlparse(upstream)
        assert target.hostname is not None, upstream
        host: str = target.hostname
        context = ssl.create_default_context(cafile=str(ca_file))
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                fault = proxy.plan.fault_for(self.command, self.path, body)
                if fault in ("500", "429"):
                    payload = (
                        b'{"kind":"Status","apiVersion":"v1","status":"Failure","message":"injected","code":%s}'
                        % fault.encode()
                    )
                    self._answer(int(fault), {"content-type": "application/json"}, payload)
                    return
                upstream_connection = http.client.HTTPSConnection(host, target.port, context=context, timeout=30)
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() not in ("host", "authorization", "connection")
                }
                headers["authorization"] = f"Bearer {token}"
                upstream_connection.request(self.command, self.path, body=body or None, headers=headers)
                response = upstream_connection.getresponse()
                payload = response.read()
                upstream_connection.close()
                if fault == "timeout":
                    time.sleep(proxy.plan.timeout_hold_seconds)  # the server acted; the client gave up
                response_headers = {
                    k: v
                    for k, v in response.getheaders()
                    if k.lower() not in ("transfer-encoding", "connection", "content-length")
                }
                self._answer(response.status, response_headers, payload)

            def _answer(self, status: int, headers: dict, payload: bytes) -> None:
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and left

            do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _serve

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = cast("tuple[str, int]", self._server.server_address[:2])  # AF_INET
        return f"http://{host}:{port}"

    def __enter__(self) -> FaultyApiServerProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._server.shutdown()
        self._server.server_close()
