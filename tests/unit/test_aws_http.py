"""runplane.aws.http: signatures identical to botocore's, botocore's answers and errors, and
botocore's standard retries, against a loopback HTTP server standing in for the service."""

from __future__ import annotations

import base64
import json
import threading
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar
from urllib.parse import parse_qsl, urlsplit

import botocore.auth
import botocore.credentials
import botocore.session
import pytest
from botocore.awsrequest import AWSRequest

from runplane.aws import http as aws_http
from runplane.aws.http import sigv4
from runplane.aws.http.dynamodb import DynamoDBClient
from runplane.aws.http.s3 import S3Client
from runplane.aws.http.transport import MAX_ATTEMPTS, ConnectionFailure, Endpoint, ServiceError

CREDENTIALS = sigv4.Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session-token/+=")
BOTOCORE_CREDENTIALS = botocore.credentials.Credentials(
    CREDENTIALS.access_key, CREDENTIALS.secret_key, CREDENTIALS.token
)


def _botocore_time(signed_date: str) -> datetime:
    return datetime.strptime(signed_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


@pytest.mark.parametrize("token", [CREDENTIALS.token, None])
def test_a_dynamodb_request_is_signed_as_botocore_signs_it(token):
    credentials = sigv4.Credentials(CREDENTIALS.access_key, CREDENTIALS.secret_key, token)
    body = b'{"TableName":"t","Key":{"pk":{"S":"a  b"}}}'
    headers = {"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "DynamoDB_20120810.GetItem"}
    request = AWSRequest(method="POST", url="https://dynamodb.eu-west-1.amazonaws.com/", data=body, headers=headers)
    botocore.auth.SigV4Auth(
        botocore.credentials.Credentials(credentials.access_key, credentials.secret_key, token), "dynamodb", "eu-west-1"
    ).add_auth(request)
    ours = sigv4.sign(
        method="POST",
        host="dynamodb.eu-west-1.amazonaws.com",
        path="/",
        headers=headers,
        body_hash=sigv4.payload_hash(body),
        credentials=credentials,
        region="eu-west-1",
        service="dynamodb",
        now=_botocore_time(request.headers["X-Amz-Date"]),
    )
    assert ours["Authorization"] == request.headers["Authorization"]
    assert ours.get("X-Amz-Security-Token") == request.headers.get("X-Amz-Security-Token")


def test_an_s3_request_with_an_awkward_key_is_signed_as_botocore_signs_it():
    body = b"inputs"
    path = sigv4.uri_path("/bucket/p/d/run 1/ünïcode+key=~.pb")
    headers = {"Content-Type": "application/octet-stream", "X-Amz-Content-SHA256": sigv4.payload_hash(body)}
    request = AWSRequest(method="PUT", url=f"http://127.0.0.1:9000{path}", data=body, headers=headers)
    botocore.auth.S3SigV4Auth(BOTOCORE_CREDENTIALS, "s3", "us-east-1").add_auth(request)
    ours = sigv4.sign(
        method="PUT",
        host="127.0.0.1:9000",
        path=path,
        headers=headers,
        body_hash=sigv4.payload_hash(body),
        credentials=CREDENTIALS,
        region="us-east-1",
        service="s3",
        now=_botocore_time(request.headers["X-Amz-Date"]),
    )
    assert ours["Authorization"] == request.headers["Authorization"]


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("put_object", {"ContentMD5": "1B2M2Y8AsgTpgAmY7PhCfg==", "ContentLength": 1234}),
        ("get_object", {}),
    ],
)
def test_a_presigned_url_is_the_one_botocore_makes(monkeypatch, method, params):
    for name, value in {
        "AWS_ACCESS_KEY_ID": CREDENTIALS.access_key,
        "AWS_SECRET_ACCESS_KEY": CREDENTIALS.secret_key,
        "AWS_SESSION_TOKEN": CREDENTIALS.token,
    }.items():
        monkeypatch.setenv(name, value)
    from botocore.config import Config

    client = botocore.session.Session().create_client(
        "s3", region_name="us-east-1", endpoint_url="http://127.0.0.1:9000", config=Config(signature_version="s3v4")
    )
    full = {"Bucket": "data", "Key": "p/d/abc/file name.tar.gz", **params}
    theirs = urlsplit(client.generate_presigned_url(method, Params=full, ExpiresIn=600))
    their_query = dict(parse_qsl(theirs.query))
    endpoint = Endpoint(url="http://127.0.0.1:9000", service="s3", region="us-east-1", credentials=lambda: CREDENTIALS)
    ours = urlsplit(
        S3Client(endpoint=endpoint, path_style=True).generate_presigned_url(method, Params=full, ExpiresIn=600)
    )
    our_query = dict(parse_qsl(ours.query))
    # The same moment, then the same URL: botocore's clock ran between the two.
    assert our_query["X-Amz-Date"][:8] == their_query["X-Amz-Date"][:8]
    ours_again = urlsplit(
        sigv4.presign(
            method="PUT" if method == "put_object" else "GET",
            base_url="http://127.0.0.1:9000",
            host="127.0.0.1:9000",
            path=ours.path,
            headers={
                h: str(params[p])
                for p, h in (("ContentMD5", "Content-MD5"), ("ContentLength", "Content-Length"))
                if p in params
            },
            credentials=CREDENTIALS,
            region="us-east-1",
            service="s3",
            now=_botocore_time(their_query["X-Amz-Date"]),
            expires_in=600,
        )
    )
    assert (ours_again.netloc, ours_again.path) == (theirs.netloc, theirs.path)
    assert dict(parse_qsl(ours_again.query)) == their_query


def test_a_presigned_url_is_refused_for_other_calls_and_lifetimes():
    client = S3Client(
        endpoint=Endpoint(url="http://127.0.0.1:1", service="s3", region="us-east-1", credentials=lambda: CREDENTIALS),
        path_style=True,
    )
    with pytest.raises(ValueError, match="delete_object"):
        client.generate_presigned_url("delete_object", Params={"Bucket": "b", "Key": "k"})
    with pytest.raises(ValueError, match="ExpiresIn"):
        client.generate_presigned_url("get_object", Params={"Bucket": "b", "Key": "k"}, ExpiresIn=8 * 24 * 3600)


def test_s3_addressing_is_virtual_hosted_on_aws_and_path_style_on_a_custom_endpoint():
    def address(url: str, *, path_style: bool, bucket: str) -> tuple[str, str, str]:
        endpoint = Endpoint(url=url, service="s3", region="eu-west-1", credentials=lambda: CREDENTIALS)
        return S3Client(endpoint=endpoint, path_style=path_style)._address(bucket, "a b/c")

    aws = "https://s3.eu-west-1.amazonaws.com"
    assert address(aws, path_style=False, bucket="data") == (
        "https://data.s3.eu-west-1.amazonaws.com",
        "data.s3.eu-west-1.amazonaws.com",
        "/a%20b/c",
    )
    assert address(aws, path_style=False, bucket="my.data")[2] == "/my.data/a%20b/c"  # TLS cannot cover dots
    assert address("http://127.0.0.1:9000", path_style=True, bucket="data") == (
        "http://127.0.0.1:9000",
        "127.0.0.1:9000",
        "/data/a%20b/c",
    )


# --- the wire, against a loopback service -----------------------------------------------------


class FakeService(BaseHTTPRequestHandler):
    """Answers each request with the next scripted answer; records what it was sent."""

    protocol_version = "HTTP/1.1"  # keep-alive, as AWS
    script: ClassVar[list[tuple[int, dict[str, str], bytes] | str]] = []  # each test's own subclass
    received: ClassVar[list[tuple[str, str, dict[str, str], bytes]]] = []

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).received.append((self.command, self.path, dict(self.headers), body))
        step = type(self).script.pop(0)
        if step == "drop":  # the connection dies without an answer
            self.close_connection = True
            self.connection.shutdown(2)
            return
        assert not isinstance(step, str)
        status, headers, payload = step
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_POST = do_PUT = do_GET = do_DELETE = _answer

    def log_message(self, format: str, *args: object) -> None:  # http.server's signature: quiet
        pass


@pytest.fixture
def service() -> Iterator[tuple[str, type[FakeService]]]:
    handler = type("Service", (FakeService,), {"script": [], "received": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def _dynamodb(url: str, sleeps: list[float] | None = None) -> DynamoDBClient:
    return DynamoDBClient(
        endpoint=Endpoint(
            url=url,
            service="dynamodb",
            region="us-east-1",
            credentials=lambda: CREDENTIALS,
            sleep=(sleeps if sleeps is not None else []).append,
        )
    )


def _json(status: int, payload: object, *, crc: bool = True) -> tuple[int, dict[str, str], bytes]:
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": "req-1"}
    if crc:
        headers["x-amz-crc32"] = str(zlib.crc32(body))
    return status, headers, body


def test_a_call_sends_the_parameters_as_botocore_would_and_decodes_binary_values(service):
    url, fake = service
    blob = b"\x00\xffspec"
    fake.script = [_json(200, {"Item": {"pk": {"S": "k"}, "spec": {"B": base64.b64encode(blob).decode()}}})]
    answer = _dynamodb(url).get_item(TableName="t", Key={"pk": {"S": "k"}, "raw": {"B": blob}}, ConsistentRead=True)
    assert answer["Item"]["spec"] == {"B": blob}
    assert answer["ResponseMetadata"] == {"HTTPStatusCode": 200, "RequestId": "req-1"}
    method, path, headers, body = fake.received[0]
    assert (method, path, headers["X-Amz-Target"]) == ("POST", "/", "DynamoDB_20120810.GetItem")
    assert json.loads(body)["Key"]["raw"] == {"B": base64.b64encode(blob).decode()}
    assert headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert headers["X-Amz-Security-Token"] == CREDENTIALS.token


def test_a_failed_condition_raises_its_own_class_with_the_returned_item(service):
    url, fake = service
    fake.script = [
        _json(
            400,
            {
                "__type": "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException",
                "message": "The conditional request failed",
                "Item": {"spec": {"B": base64.b64encode(b"old").decode()}},
            },
        )
    ]
    client = _dynamodb(url)
    with pytest.raises(client.exceptions.ConditionalCheckFailedException) as caught:
        client.put_item(TableName="t", Item={}, ConditionExpression="attribute_not_exists(pk)")
    assert caught.value.response["Error"] == {
        "Code": "ConditionalCheckFailedException",
        "Message": "The conditional request failed",
    }
    assert caught.value.response["Item"] == {"spec": {"B": b"old"}}
    assert isinstance(caught.value, ServiceError)
    assert not isinstance(caught.value, client.exceptions.TransactionCanceledException)
    assert "(ConditionalCheckFailedException) when calling the PutItem operation" in str(caught.value)
    assert len(fake.received) == 1  # never retried


def test_throttling_5xx_bad_checksums_and_dropped_connections_are_retried_with_backoff(service):
    url, fake = service
    throttled = _json(400, {"__type": "x#ProvisionedThroughputExceededException", "message": "slow down"})
    good = _json(200, {"Attributes": {}})
    corrupt = (200, {"x-amz-crc32": "1"}, b"{}")
    fake.script = [throttled, (503, {}, b""), corrupt, good]
    sleeps: list[float] = []
    assert _dynamodb(url, sleeps).update_item(TableName="t")["Attributes"] == {}
    assert len(fake.received) == 4 and len(sleeps) == 3
    assert all(0 <= pause <= 2.0**attempt for attempt, pause in enumerate(sleeps))
    # Each attempt is signed (afresh: a retry after a long backoff would carry a stale date otherwise).
    assert all(headers["Authorization"].startswith("AWS4-HMAC-SHA256 ") for _, _, headers, _ in fake.received)

    fake.script = ["drop", good]
    fake.received.clear()
    assert _dynamodb(url).update_item(TableName="t")["Attributes"] == {}
    assert len(fake.received) == 2


def test_after_the_last_attempt_the_error_is_raised(service):
    url, fake = service
    fake.script = [(500, {}, b"") for _ in range(MAX_ATTEMPTS)]
    client = _dynamodb(url)
    with pytest.raises(ServiceError) as caught:
        client.query(TableName="t")
    assert caught.value.response["Error"]["Code"] == "500"
    assert len(fake.received) == MAX_ATTEMPTS

    nothing_listens = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(ConnectionFailure):
        _dynamodb(nothing_listens).query(TableName="t")


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_s3_objects_round_trip_and_a_missing_key_is_no_such_key(service):
    url, fake = service
    endpoint = Endpoint(url=url, service="s3", region="us-east-1", credentials=lambda: CREDENTIALS)
    client = S3Client(endpoint=endpoint, path_style=True)
    missing = b"<?xml version='1.0'?><Error><Code>NoSuchKey</Code><Message>The key does not exist</Message></Error>"
    fake.script = [(200, {"ETag": '"e"'}, b""), (200, {}, b"data"), (404, {}, missing), (204, {}, b"")]
    assert (
        client.put_object(Bucket="b", Key="k 1", Body=b"data", ContentType="application/octet-stream")["ETag"] == '"e"'
    )
    assert client.get_object(Bucket="b", Key="k 1")["Body"].read() == b"data"
    with pytest.raises(client.exceptions.NoSuchKey, match="The key does not exist"):
        client.get_object(Bucket="b", Key="gone")
    client.delete_object(Bucket="b", Key="k 1")
    assert [(m, p) for m, p, _, _ in fake.received] == [
        ("PUT", "/b/k%201"),
        ("GET", "/b/k%201"),
        ("GET", "/b/gone"),
        ("DELETE", "/b/k%201"),
    ]
    put_headers = fake.received[0][2]
    assert put_headers["X-Amz-Content-SHA256"] == sigv4.payload_hash(b"data")


def test_configuration_comes_from_the_environment_as_boto3_reads_it(monkeypatch):
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKID")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:8000")
    dynamodb = aws_http.dynamodb_client()
    assert dynamodb is aws_http.dynamodb_client()  # one per process
    assert dynamodb._endpoint.url == "http://127.0.0.1:8000"
    assert dynamodb._endpoint.credentials() == sigv4.Credentials("AKID", "secret", None)
    s3 = aws_http.s3_client()
    assert (s3._endpoint.url, s3._path_style) == ("https://s3.eu-central-1.amazonaws.com", False)
    monkeypatch.setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true")
    assert aws_http.dynamodb_client()._endpoint.url == "https://dynamodb.eu-central-1.amazonaws.com"
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:8001")
    monkeypatch.setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "false")
    assert aws_http.dynamodb_client()._endpoint.url == "http://127.0.0.1:8001"  # the environment, read again


def test_credentials_never_show_their_secret():
    assert CREDENTIALS.secret_key not in repr(CREDENTIALS)


def test_eks_describe_cluster_reads_the_cluster_and_names_its_errors(service):
    from runplane.aws.http.eks import ERRORS, describe_cluster

    url, fake = service
    cluster = {"name": "flyte", "endpoint": "https://abc.eks.amazonaws.com", "certificateAuthority": {"data": "Q0E="}}
    fake.script = [
        (200, {"Content-Type": "application/json"}, json.dumps({"cluster": cluster}).encode()),
        (404, {"x-amzn-ErrorType": "ResourceNotFoundException:http://internal"}, b'{"message":"No cluster found"}'),
    ]
    endpoint = Endpoint(url=url, service="eks", region="us-east-1", credentials=lambda: CREDENTIALS)
    assert describe_cluster(endpoint=endpoint, name="flyte") == cluster
    with pytest.raises(ERRORS.ResourceNotFoundException, match="No cluster found"):
        describe_cluster(endpoint=endpoint, name="gone")
    assert [(m, p) for m, p, _, _ in fake.received] == [("GET", "/clusters/flyte"), ("GET", "/clusters/gone")]


def test_a_kept_connection_the_service_closed_is_replaced_at_once_without_a_backoff(service):
    url, fake = service
    good = _json(200, {"Attributes": {}})
    fake.script = [good, "drop", good]
    sleeps: list[float] = []
    client = _dynamodb(url, sleeps)
    client.update_item(TableName="t")  # opens this thread's connection, kept alive
    client.update_item(TableName="t")  # the service drops it: sent again on a new one
    assert len(fake.received) == 3 and sleeps == []
