"""SigV4 (runplane.aws.http.sigv4) against botocore's own signer, over arbitrary credentials,
headers, query parameters, bodies and S3 keys: the Authorization header is botocore's, byte for
byte, whatever is drawn. The fixed cases (and the presigned URLs) are in test_aws_http.py."""

from __future__ import annotations

import string
from datetime import UTC, datetime

import botocore.auth
import botocore.credentials
from botocore.awsrequest import AWSRequest
from hypothesis import given, settings
from hypothesis import strategies as st

from runplane.aws.http import sigv4

# Headers the signers add or set themselves, and those botocore never signs (its blacklist).
RESERVED_HEADERS = frozenset(
    {"host", "authorization", "x-amz-date", "x-amz-security-token", "x-amz-content-sha256"}
    | set(botocore.auth.SIGNED_HEADERS_BLACKLIST)
)
# Header values are text on the wire: printable ASCII with spaces and tabs (runs of which both
# signers fold to one space).
header_values = st.text(alphabet=string.printable.strip("\r\n\x0b\x0c") + " \t", max_size=20)
header_names = st.text(alphabet=string.ascii_letters + string.digits + "-", min_size=1, max_size=12).filter(
    lambda name: name.lower() not in RESERVED_HEADERS
)
headers = st.dictionaries(header_names, header_values, max_size=5).filter(
    lambda drawn: len({name.lower() for name in drawn}) == len(drawn)  # one value a name, as HTTP folds them
)
queries = st.dictionaries(st.text(min_size=1, max_size=10), st.text(max_size=10), max_size=4)
credentials = st.builds(
    sigv4.Credentials,
    access_key=st.text(alphabet=string.ascii_uppercase + string.digits, min_size=16, max_size=20),
    secret_key=st.text(min_size=1, max_size=40),
    token=st.none() | st.text(alphabet=string.ascii_letters + string.digits + "/+=", min_size=1, max_size=40),
)
regions = st.sampled_from(["us-east-1", "eu-west-1", "ap-southeast-2"])
methods = st.sampled_from(["GET", "PUT", "POST", "DELETE", "HEAD"])
bodies = st.binary(max_size=64)


def _botocore_credentials(ours: sigv4.Credentials) -> botocore.credentials.Credentials:
    return botocore.credentials.Credentials(ours.access_key, ours.secret_key, ours.token)


def _signed_at(request: AWSRequest) -> datetime:
    """The moment botocore signed at (its clock), for ours to sign at the same one."""
    return datetime.strptime(request.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


@settings(max_examples=100, deadline=None)
@given(
    creds=credentials,
    region=regions,
    method=methods,
    drawn_headers=headers,
    query=queries,
    body=bodies,
    service=st.sampled_from(["dynamodb", "eks", "sts"]),
)
def test_a_request_is_signed_as_botocore_signs_it(creds, region, method, drawn_headers, query, body, service):
    host = f"{service}.{region}.amazonaws.com"
    request = AWSRequest(method=method, url=f"https://{host}/", data=body, headers=dict(drawn_headers), params=query)
    botocore.auth.SigV4Auth(_botocore_credentials(creds), service, region).add_auth(request)
    ours = sigv4.sign(
        method=method,
        host=host,
        path="/",
        headers=drawn_headers,
        body_hash=sigv4.payload_hash(body),
        credentials=creds,
        region=region,
        service=service,
        now=_signed_at(request),
        query=query,
    )
    assert ours["Authorization"] == request.headers["Authorization"]
    assert ours.get("X-Amz-Security-Token") == request.headers.get("X-Amz-Security-Token")


@settings(max_examples=100, deadline=None)
@given(
    creds=credentials,
    region=regions,
    method=methods,
    key=st.text(min_size=1, max_size=30),
    drawn_headers=headers,
    query=queries,
    body=bodies,
)
def test_an_s3_request_for_any_key_is_signed_as_botocore_signs_it(
    creds, region, method, key, drawn_headers, query, body
):
    path = sigv4.uri_path(f"/bucket/{key}")
    signed_headers = {**drawn_headers, "X-Amz-Content-SHA256": sigv4.payload_hash(body)}
    request = AWSRequest(
        method=method, url=f"http://127.0.0.1:9000{path}", data=body, headers=dict(signed_headers), params=query
    )
    botocore.auth.S3SigV4Auth(_botocore_credentials(creds), "s3", region).add_auth(request)
    ours = sigv4.sign(
        method=method,
        host="127.0.0.1:9000",
        path=path,
        headers=signed_headers,
        body_hash=sigv4.payload_hash(body),
        credentials=creds,
        region=region,
        service="s3",
        now=_signed_at(request),
        query=query,
    )
    assert ours["Authorization"] == request.headers["Authorization"]
