"""Lambda's Invoke API on loopback, for the invocations one function makes of another.

moto's Lambda would need Docker to run a handler, so the local stack answers the Invoke call
itself (``POST /2015-03-31/functions/<name>/invocations``) and runs the handler in this process,
as the template configures it: ``InvocationType: Event`` is accepted with 202 and run on a thread
of its own (Lambda's asynchronous invoke), ``RequestResponse`` runs at once and returns the
result. boto3 reaches it through ``AWS_ENDPOINT_URL_LAMBDA``, so the deployed code path (the
boto3 ``invoke`` call) is the one that runs. Unknown functions get Lambda's 404.

``invoke_async`` is the same asynchronous invoke for the local scheduler's ticks.
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

from local_stack.lambda_runtime import LambdaContext, load_handler

logger = logging.getLogger(__name__)

INVOKE_PATH_PREFIX = "/2015-03-31/functions/"


class LocalLambdaService:
    def __init__(self, *, functions: dict[str, tuple[str, float]], host: str = "127.0.0.1", port: int = 0) -> None:
        """``functions``: function name -> (dotted handler, timeout in seconds)."""
        self._functions = functions
        self._disabled: set[str] = set()
        self._server = ThreadingHTTPServer((host, port), self._request_handler_class())
        self._server.daemon_threads = True
        self._running: set[threading.Thread] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.invocations: list[tuple[str, dict[str, Any]]] = []

    @property
    def endpoint(self) -> str:
        host, port = cast("tuple[str, int]", self._server.server_address[:2])  # AF_INET
        return f"http://{host}:{port}"

    def start(self) -> LocalLambdaService:
        self._thread = threading.Thread(target=self._server.serve_forever, name="lambda-invoke", daemon=True)
        self._thread.start()
        return self

    def disable(self, name: str) -> None:
        """No more invocations of the function, as a reserved concurrency of 0 does."""
        self._disabled.add(name)

    def enable(self, name: str) -> None:
        self._disabled.discard(name)

    def stop(self, *, timeout: float = 2.0) -> None:
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            running = list(self._running)
        for thread in running:
            thread.join(timeout=timeout)

    def invoke_async(self, name: str, event: dict[str, Any]) -> bool:
        """Lambda's asynchronous invoke: queued at once, run on a thread of its own."""
        if name not in self._functions:
            return False
        if name in self._disabled:
            logger.info("invocation of disabled function %s dropped", name)
            return True
        thread = threading.Thread(target=self._run, args=(name, event), name=f"lambda-{name}", daemon=True)
        with self._lock:
            self._running.add(thread)
        thread.start()
        return True

    def invoke(self, name: str, event: dict[str, Any]) -> Any:
        if name in self._disabled:
            raise RuntimeError(f"function {name} is disabled (reserved concurrency 0)")
        handler, timeout = self._functions[name]
        self.invocations.append((name, event))
        return load_handler(handler)(event, LambdaContext(function_name=name, timeout_seconds=timeout))

    def _run(self, name: str, event: dict[str, Any]) -> None:
        try:
            self.invoke(name, event)
        except Exception:
            logger.exception("asynchronous invocation of %s failed", name)
        finally:
            with self._lock:
                self._running.discard(threading.current_thread())

    def _request_handler_class(self):
        service = self

        class RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                path = self.path.split("?", 1)[0]
                name = path[len(INVOKE_PATH_PREFIX) :].split("/", 1)[0] if path.startswith(INVOKE_PATH_PREFIX) else ""
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if name not in service._functions or not path.endswith("/invocations"):
                    return self._reply(404, {"Type": "User", "message": f"Function not found: {name}"})
                try:
                    event = json.loads(body or b"{}")
                except ValueError:
                    return self._reply(400, {"Type": "User", "message": "Could not parse request body into json"})
                if self.headers.get("x-amz-invocation-type", "RequestResponse") == "Event":
                    service.invoke_async(name, event)
                    return self._reply(202, None)
                try:
                    return self._reply(200, service.invoke(name, event))
                except Exception as exc:
                    logger.exception("invocation of %s failed", name)
                    return self._reply(200, {"errorMessage": str(exc), "errorType": type(exc).__name__}, error=True)

            def _reply(self, status: int, payload: Any, *, error: bool = False) -> None:
                body = b"" if payload is None else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                if error:
                    self.send_header("x-amz-function-error", "Unhandled")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                logger.debug("%s - %s", self.address_string(), format % args)

        return RequestHandler
