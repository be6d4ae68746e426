"""S3's REST API for the object calls the functions make, and presigned URLs.

The data bucket is read and written one whole object at a time (run inputs, code bundles, action
data): PUT, GET and DELETE of a key, plus presigned PUT/GET URLs handed to the SDK. Those are
plain HTTP requests, so this client makes them directly, with botocore's names and answers
(``get_object(...)["Body"].read()``, ``client.exceptions.NoSuchKey``), and without botocore's
import and model loading at a cold start. Addressing is botocore's default: virtual-hosted
buckets on AWS (path-style for names with dots, which TLS certificates cannot cover), path-style
on a custom endpoint (moto locally).
"""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime
from typing import Any

from runplane.aws.http.sigv4 import payload_hash, presign, uri_path
from runplane.aws.http.transport import Answer, Endpoint, ErrorClasses

# What a presigned URL may make the holder do, by botocore's method name.
PRESIGNABLE = {"put_object": "PUT", "get_object": "GET"}
# S3's limit for a presigned URL's lifetime (SigV4): seven days.
MAX_PRESIGN_SECONDS = 7 * 24 * 3600
_XML_FIELD = re.compile(r"<(Code|Message)>([^<]*)</\1>")


class S3Client:
    """botocore's S3 client's calling convention for the calls the functions make."""

    def __init__(self, *, endpoint: Endpoint, path_style: bool) -> None:
        self._endpoint = endpoint
        self._path_style = path_style
        self.exceptions = ErrorClasses()

    def put_object(
        self, *, Bucket: str, Key: str, Body: bytes, ContentType: str | None = None, ContentMD5: str | None = None
    ) -> dict[str, Any]:
        headers = {"Content-Type": ContentType} if ContentType else {}
        if ContentMD5:
            headers["Content-MD5"] = ContentMD5
        answer = self._exchange("PUT", Bucket, Key, operation="PutObject", body=bytes(Body), headers=headers)
        return {"ETag": answer.headers.get("etag", ""), "ResponseMetadata": _metadata(answer)}

    def get_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:
        answer = self._exchange("GET", Bucket, Key, operation="GetObject")
        return {
            "Body": io.BytesIO(answer.body),
            "ContentLength": len(answer.body),
            "ContentType": answer.headers.get("content-type", ""),
            "ETag": answer.headers.get("etag", ""),
            "ResponseMetadata": _metadata(answer),
        }

    def head_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:
        """An object's ETag without its body (a missing key raises the error coded ``404``)."""
        answer = self._exchange("HEAD", Bucket, Key, operation="HeadObject")
        return {"ETag": answer.headers.get("etag", ""), "ResponseMetadata": _metadata(answer)}

    def delete_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:
        answer = self._exchange("DELETE", Bucket, Key, operation="DeleteObject")
        return {"ResponseMetadata": _metadata(answer)}

    def generate_presigned_url(self, ClientMethod: str, Params: dict[str, Any], ExpiresIn: int = 3600) -> str:
        """A URL for ``put_object`` or ``get_object`` of ``Params["Bucket"]``/``Params["Key"]``;
        ``ContentMD5``, ``ContentLength`` and ``ContentType`` become signed headers, which the
        holder must send as given (botocore signs the same ones)."""
        if ClientMethod not in PRESIGNABLE:
            raise ValueError(f"cannot presign {ClientMethod!r}: one of {sorted(PRESIGNABLE)}")
        if not 0 < ExpiresIn <= MAX_PRESIGN_SECONDS:
            raise ValueError(f"ExpiresIn must be between 1 and {MAX_PRESIGN_SECONDS} seconds")
        headers = {
            header: str(Params[param])
            for param, header in (
                ("ContentMD5", "Content-MD5"),
                ("ContentLength", "Content-Length"),
                ("ContentType", "Content-Type"),
            )
            if param in Params
        }
        base_url, host, path = self._address(Params["Bucket"], Params["Key"])
        return presign(
            method=PRESIGNABLE[ClientMethod],
            base_url=base_url,
            host=host,
            path=path,
            headers=headers,
            credentials=self._endpoint.credentials(),
            region=self._endpoint.region,
            service="s3",
            now=datetime.now(UTC),
            expires_in=ExpiresIn,
        )

    def _address(self, bucket: str, key: str) -> tuple[str, str, str]:
        """``(base URL, host, URI-encoded path)`` of an object."""
        if self._path_style or "." in bucket:
            return self._endpoint.url, self._endpoint.host, uri_path(f"/{bucket}/{key}")
        scheme = self._endpoint.url.partition("://")[0]
        host = f"{bucket}.{self._endpoint.host}"
        return f"{scheme}://{host}", host, uri_path(f"/{key}")

    def _exchange(
        self,
        method: str,
        bucket: str,
        key: str,
        *,
        operation: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
    ) -> Answer:
        _, host, path = self._address(bucket, key)
        body_hash = payload_hash(body)
        return self._endpoint.exchange(
            method=method,
            path=path,
            host=host,
            headers={**(headers or {}), "X-Amz-Content-SHA256": body_hash},
            body=body,
            body_hash=body_hash,
            operation=operation,
            error_of=_error_of,
            errors=self.exceptions,
        )


def _metadata(answer: Answer) -> dict[str, Any]:
    return {"HTTPStatusCode": answer.status, "RequestId": answer.headers.get("x-amz-request-id", "")}


def _error_of(answer: Answer) -> dict[str, Any] | None:
    """None for a good answer; botocore's shape otherwise (an answer without an XML error, such
    as a HEAD's, is named by its status, as botocore names it)."""
    if answer.status < 300:
        return None
    fields = dict(_XML_FIELD.findall(answer.body.decode("utf-8", "replace")))
    code = fields.get("Code") or str(answer.status)
    return {"Error": {"Code": code, "Message": fields.get("Message", "")}, "ResponseMetadata": _metadata(answer)}
