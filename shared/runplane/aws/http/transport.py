"""One HTTP exchange with an AWS service, retried the way botocore's ``standard`` mode retries it.

``Endpoint.exchange`` is what ``runplane.aws.http``'s DynamoDB and S3 clients call: it signs each
attempt afresh (a retry later than five minutes would fail with a stale date), keeps one
keep-alive connection per thread (``http.client`` connections are not thread-safe; reconcile
calls from worker threads; one the service closed while the function was idle is replaced at once,
as urllib3 replaces it), and retries connection failures, 5xx answers, throttling and
transient error codes, and answers failing the service's CRC32, with capped exponential backoff
and full jitter. Conditional writes are what make a retried write safe, as they are with
botocore; nothing else is retried.

Errors come back as ``ServiceError``, shaped as botocore's ``ClientError``
(``response["Error"]["Code"]``, and the error's own fields such as ``Item`` or
``CancellationReasons`` at the top of ``response``), one subclass per error code, so
``client.exceptions.ConditionalCheckFailedException`` reads the same for both clients.
"""

from __future__ import annotations

import http.client
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from runplane.aws.http.sigv4 import Credentials, sign

# The same as the botocore Config the functions used: 4 attempts, 3 s to connect, 10 s to answer.
MAX_ATTEMPTS = 4
CONNECT_TIMEOUT_SECONDS = 3.0
READ_TIMEOUT_SECONDS = 10.0
# botocore's standard mode: backoff up to 2^(attempt-1) seconds, full jitter, never above 20 s.
MAX_BACKOFF_SECONDS = 20.0
# botocore's standard mode retries these codes (throttling, then transient) on any operation.
RETRYABLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalError",
        "Crc32Mismatch",  # ours: an answer whose body failed the CRC32 its service sent
    }
)
RETRYABLE_STATUSES = frozenset({500, 502, 503, 504})
# What sending on a kept connection the other end has closed raises (not a timeout: a request
# that timed out may have been carried out, and waits for the backoff like any other failure).
STALE_CONNECTION_ERRORS = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)


class ServiceError(Exception):
    """An AWS service's error answer, shaped as botocore's ``ClientError``."""

    def __init__(self, *, response: dict[str, Any], operation_name: str) -> None:
        self.response = response
        self.operation_name = operation_name
        error = response.get("Error", {})
        super().__init__(
            f"An error occurred ({error.get('Code', 'Unknown')}) when calling the {operation_name} operation: "
            f"{error.get('Message', '')}"
        )


class ErrorClasses:
    """``client.exceptions``: the ``ServiceError`` subclass of each error code, made when first named."""

    def __init__(self) -> None:
        self._classes: dict[str, type[ServiceError]] = {}
        self._lock = threading.Lock()

    def __getattr__(self, code: str) -> type[ServiceError]:
        if code.startswith("_"):
            raise AttributeError(code)
        return self.of(code)

    def of(self, code: str) -> type[ServiceError]:
        with self._lock:
            if code not in self._classes:
                self._classes[code] = type(code, (ServiceError,), {"__module__": __name__})
            return self._classes[code]


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]  # lower-cased names
    body: bytes


class ConnectionFailure(Exception):
    """No answer: the connection failed or timed out (retried; raised after the last attempt)."""


class Endpoint:
    """A service endpoint (``https://dynamodb.us-east-1.amazonaws.com``, or moto on loopback)."""

    def __init__(
        self,
        *,
        url: str,
        service: str,
        region: str,
        credentials: Callable[[], Credentials],
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) endpoint: {url!r}")
        self.url = f"{parts.scheme}://{parts.netloc}"
        self.host = parts.netloc
        self.service = service
        self.region = region
        self._https = parts.scheme == "https"
        self._hostname = parts.hostname
        self._port = parts.port
        self._credentials = credentials
        self._sleep = sleep
        self._local = threading.local()
        if self._https:
            import ssl

            self._tls = ssl.create_default_context()

    def credentials(self) -> Credentials:
        return self._credentials()

    def exchange(
        self,
        *,
        method: str,
        path: str,
        headers: Mapping[str, str],
        body: bytes,
        body_hash: str,
        operation: str,
        error_of: Callable[[Answer], dict[str, Any] | None],
        errors: ErrorClasses,
        host: str | None = None,
    ) -> Answer:
        """Send until answered without a retryable error; ``error_of`` reads an answer's error
        (None: a success). ``path`` is URI-encoded, without a query (no call here needs one);
        ``host`` defaults to the endpoint's (S3's virtual-hosted buckets differ)."""
        host = host or self.host
        for attempt in range(1, MAX_ATTEMPTS + 1):
            signed = sign(
                method=method,
                host=host,
                path=path,
                headers=headers,
                body_hash=body_hash,
                credentials=self._credentials(),
                region=self.region,
                service=self.service,
                now=datetime.now(UTC),
            )
            last = attempt == MAX_ATTEMPTS
            try:
                answer = self._send(method=method, path=path, host=host, headers={**headers, **signed}, body=body)
            except ConnectionFailure:
                if last:
                    raise
                self._backoff(attempt)
                continue
            error = error_of(answer)
            if error is None:
                return answer
            code = error.get("Error", {}).get("Code", "")
            if not last and (code in RETRYABLE_CODES or answer.status in RETRYABLE_STATUSES):
                self._backoff(attempt)
                continue
            raise errors.of(code or str(answer.status))(response=error, operation_name=operation)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _backoff(self, attempt: int) -> None:
        self._sleep(random.random() * min(MAX_BACKOFF_SECONDS, 2.0 ** (attempt - 1)))

    def _send(self, *, method: str, path: str, host: str, headers: Mapping[str, str], body: bytes) -> Answer:
        reused = host in (getattr(self._local, "connections", None) or {})
        connection = self._connection(host)
        try:
            connection.request(method, path, body=body, headers={**headers, "Host": host})
            response = connection.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            self._local.connections.pop(host, None)
            if reused and isinstance(exc, STALE_CONNECTION_ERRORS):
                # The service closed a connection this thread kept between invocations (an idle
                # Lambda's): send again on a new one at once, as urllib3 does, not after a backoff.
                return self._send(method=method, path=path, host=host, headers=headers, body=body)
            raise ConnectionFailure(f"{method} {self.url}: {exc!r}") from exc
        if response.will_close:
            connection.close()
            self._local.connections.pop(host, None)
        return Answer(status=response.status, headers={k.lower(): v for k, v in response.getheaders()}, body=data)

    def _connection(self, host: str) -> http.client.HTTPConnection:
        """This thread's open connection to ``host`` (a connect timeout, then the read timeout)."""
        connections: dict[str, http.client.HTTPConnection] = getattr(self._local, "connections", None) or {}
        self._local.connections = connections
        if host not in connections:
            hostname = host.rsplit(":", 1)[0] if self._port else host
            connection: http.client.HTTPConnection
            if self._https:
                connection = http.client.HTTPSConnection(
                    hostname, self._port, timeout=CONNECT_TIMEOUT_SECONDS, context=self._tls
                )
            else:
                connection = http.client.HTTPConnection(hostname, self._port, timeout=CONNECT_TIMEOUT_SECONDS)
            try:
                connection.connect()
            except OSError as exc:
                connection.close()
                raise ConnectionFailure(f"connect to {host}: {exc!r}") from exc
            if connection.sock is not None:
                connection.sock.settimeout(READ_TIMEOUT_SECONDS)
            connections[host] = connection
        return connections[host]
