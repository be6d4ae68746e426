"""AWS Signature Version 4: how every request of ``runplane.aws.http`` proves who sends it.

A signature is a few HMAC-SHA256s over a canonical form of the request
(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv.html): headers for calls made
here (``sign``), query parameters for the presigned URLs handed to clients (``presign``). Both
are checked against botocore's own signer in ``tests/unit/test_aws_http.py``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

ALGORITHM = "AWS4-HMAC-SHA256"
# S3 accepts this in place of the body's hash: a presigned URL is signed before the body exists.
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
# SigV4's unreserved characters: everything else is percent-encoded in canonical forms.
UNRESERVED = "-_.~"


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str
    token: str | None = None  # session credentials (Lambda's role) have one

    def __repr__(self) -> str:  # never the secret in a log line or a traceback
        return f"Credentials(access_key={self.access_key!r})"


def payload_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def uri_path(path: str) -> str:
    """A path as it goes on the wire and into the canonical request (S3 keys: encoded once)."""
    return quote(path, safe="/" + UNRESERVED)


def _canonical_query(query: Mapping[str, str]) -> str:
    pairs = sorted((quote(k, safe=UNRESERVED), quote(v, safe=UNRESERVED)) for k, v in query.items())
    return "&".join(f"{k}={v}" for k, v in pairs)


def _signature(
    *, credentials: Credentials, region: str, service: str, amz_date: str, canonical_request: str
) -> tuple[str, str]:
    """``(credential scope, signature)`` of a canonical request."""
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    string_to_sign = f"{ALGORITHM}\n{amz_date}\n{scope}\n{payload_hash(canonical_request.encode())}"
    key = ("AWS4" + credentials.secret_key).encode()
    for part in (amz_date[:8], region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return scope, hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def _canonical_headers(headers: Mapping[str, str]) -> tuple[str, str]:
    """``(canonical headers block, signed header names)``; names lower-cased, values trimmed."""
    normalised = {name.lower(): " ".join(value.split()) for name, value in headers.items()}
    names = sorted(normalised)
    return "".join(f"{name}:{normalised[name]}\n" for name in names), ";".join(names)


def sign(
    *,
    method: str,
    host: str,
    path: str,
    headers: Mapping[str, str],
    body_hash: str,
    credentials: Credentials,
    region: str,
    service: str,
    now: datetime,
    query: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The headers that sign this request (``X-Amz-Date``, the session token, ``Authorization``),
    to send with ``headers``, all of which are signed. ``path`` is already URI-encoded."""
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    added = {"X-Amz-Date": amz_date}
    if credentials.token:
        added["X-Amz-Security-Token"] = credentials.token
    block, names = _canonical_headers({**headers, **added, "host": host})
    canonical = f"{method}\n{path}\n{_canonical_query(query or {})}\n{block}\n{names}\n{body_hash}"
    scope, signature = _signature(
        credentials=credentials, region=region, service=service, amz_date=amz_date, canonical_request=canonical
    )
    added["Authorization"] = (
        f"{ALGORITHM} Credential={credentials.access_key}/{scope}, SignedHeaders={names}, Signature={signature}"
    )
    return added


def presign(
    *,
    method: str,
    base_url: str,
    host: str,
    path: str,
    headers: Mapping[str, str],
    credentials: Credentials,
    region: str,
    service: str,
    now: datetime,
    expires_in: int,
    query: Mapping[str, str] | None = None,
    body_hash: str = UNSIGNED_PAYLOAD,
) -> str:
    """A URL that makes ``method`` on ``path`` (with the parameters ``query``) for whoever holds
    it, until ``expires_in`` seconds from ``now``; the caller must send ``headers`` (signed) with
    it, and any body. S3 signs no payload; other services sign the (empty) body's hash."""
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    block, names = _canonical_headers({**headers, "host": host})
    query = {
        **(query or {}),
        "X-Amz-Algorithm": ALGORITHM,
        "X-Amz-Credential": f"{credentials.access_key}/{amz_date[:8]}/{region}/{service}/aws4_request",
        "X-Amz-Date": amz_date,
        "X-Amz-Expires": str(expires_in),
        "X-Amz-SignedHeaders": names,
    }
    if credentials.token:
        query["X-Amz-Security-Token"] = credentials.token
    canonical = f"{method}\n{path}\n{_canonical_query(query)}\n{block}\n{names}\n{body_hash}"
    _, signature = _signature(
        credentials=credentials, region=region, service=service, amz_date=amz_date, canonical_request=canonical
    )
    query["X-Amz-Signature"] = signature
    return f"{base_url}{path}?{_canonical_query(query)}"
