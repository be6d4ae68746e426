"""EKS authentication for a Lambda: no kubeconfig, only the function's IAM role.

DescribeCluster gives the endpoint and CA; the bearer token is ``k8s-aws-v1.`` + the base64url
of a presigned STS GetCallerIdentity URL bound to the cluster name (what ``aws eks get-token``
mints). EKS accepts a token for about 15 minutes; we mint a new one after ``TOKEN_LIFETIME``.
"""

from __future__ import annotations

import base64
import tempfile
import threading
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kubernetes.client import ApiClient, Configuration

    from runplane.aws.http.sigv4 import Credentials

TOKEN_PREFIX = "k8s-aws-v1."
TOKEN_LIFETIME_SECONDS = 10 * 60  # refresh well before EKS's ~15 minute acceptance window
PRESIGN_EXPIRES_SECONDS = 60  # what aws-iam-authenticator and `aws eks get-token` use
CLUSTER_ID_HEADER = "x-k8s-aws-id"  # binds the token to one cluster: EKS checks it is signed
GET_CALLER_IDENTITY = {"Action": "GetCallerIdentity", "Version": "2011-06-15"}


def mint_token(*, cluster_name: str, region: str, credentials: Credentials | None = None) -> str:
    """The bearer token ``aws eks get-token`` prints, signed with the function's role (or
    ``credentials``): no STS client, no call, one presigned URL."""
    from runplane.aws import http as aws_http
    from runplane.aws.http.sigv4 import payload_hash, presign

    host = f"sts.{region}.amazonaws.com"
    url = presign(
        method="GET",
        base_url=f"https://{host}",
        host=host,
        path="/",
        query=GET_CALLER_IDENTITY,
        headers={CLUSTER_ID_HEADER: cluster_name},
        credentials=credentials or aws_http.credentials(),
        region=region,
        service="sts",
        now=datetime.now(UTC),
        expires_in=PRESIGN_EXPIRES_SECONDS,
        body_hash=payload_hash(b""),  # STS signs the empty body's hash, not UNSIGNED-PAYLOAD as S3
    )
    return TOKEN_PREFIX + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


class RefreshingToken:
    def __init__(self, *, cluster_name: str, region: str) -> None:
        self._cluster_name = cluster_name
        self._region = region
        self._lock = threading.Lock()
        self._token = ""
        self._minted_at = 0.0

    def value(self) -> str:
        with self._lock:
            if not self._token or time.monotonic() - self._minted_at > TOKEN_LIFETIME_SECONDS:
                self._token = mint_token(cluster_name=self._cluster_name, region=self._region)
                self._minted_at = time.monotonic()
            return self._token


def eks_api_client(cluster_name: str) -> ApiClient:
    """A kubernetes ApiClient for an EKS cluster, its token refreshed before every expiry."""
    from kubernetes import client

    from runplane.aws import http as aws_http

    region = aws_http.region()
    cluster = aws_http.describe_eks_cluster(cluster_name)
    ca_file = tempfile.NamedTemporaryFile(prefix=f"eks-{cluster_name}-", suffix=".crt", delete=False)  # noqa: SIM115
    with ca_file:
        ca_file.write(base64.b64decode(cluster["certificateAuthority"]["data"]))

    token = RefreshingToken(cluster_name=cluster_name, region=region)
    configuration = client.Configuration()
    configuration.host = cluster["endpoint"]
    configuration.ssl_ca_cert = ca_file.name
    configuration.api_key_prefix = {"authorization": "Bearer"}
    configuration.api_key = {"authorization": token.value()}

    def refresh(conf: Configuration) -> None:
        conf.api_key["authorization"] = token.value()

    # kubernetes declares the hook as ``None`` (an unannotated attribute); it calls it with the configuration.
    configuration.refresh_api_key_hook = refresh  # type: ignore[assignment]
    return client.ApiClient(configuration)
