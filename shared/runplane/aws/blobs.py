"""The data bucket: run inputs written by CreateRun and read by the data plane.

URIs are ``s3://bucket/key``; the same strings go into ActionSpecs and TaskActions, where Flyte's
executor and SDK read them.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def split_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket or not key:
        raise ValueError(f"s3 URI needs a bucket and a key: {uri!r}")
    return bucket, key


class BlobStore:
    def __init__(self, *, client: S3Client | None = None) -> None:
        self._client = client

    @cached_property
    def client(self) -> S3Client:
        if self._client is not None:
            return self._client
        from runplane.aws import http as aws_http

        return cast("S3Client", aws_http.s3_client())  # botocore's calling convention, typed by its stubs

    def put(self, uri: str, data: bytes) -> None:
        bucket, key = split_s3_uri(uri)
        self.client.put_object(Bucket=bucket, Key=key, Body=data, ContentType="application/octet-stream")

    def delete(self, uri: str) -> None:
        bucket, key = split_s3_uri(uri)
        self.client.delete_object(Bucket=bucket, Key=key)

    def get(self, uri: str) -> bytes:
        bucket, key = split_s3_uri(uri)
        return self.client.get_object(Bucket=bucket, Key=key)["Body"].read()
