"""EKS authentication for a Lambda: no kubeconfig, only the function's IAM role.

DescribeCluster gives the endpoint and CA; the bearer token is ``k8s-aws-v1.`` + the base64url
of a presigned STS GetCallerIdentity URL bound to the cluster name (what ``aws eks get-token``
mints). EKS accepts a token for about 15 minutes; we mint a new one after ``TOKEN_LIFETIME``.
"""

from __future__ import annotations

import base64
import os
import tempfile
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kubernetes.client import ApiClient, Configuration

TOKEN_PREFIX = "k8s-aws-v1."
TOKEN_LIFETIME_SECONDS = 10 * 60  # refresh well before EKS's ~15 minute acceptance window
PRESIGN_EXPIRES_SECONDS = 60  # what aws-iam-authenticator and `aws eks get-token` use
STS_SERVICE_ID = "STS"  # STS's serviceId in botocore's model: what the signer's events are named by


def mint_token(*, cluster_name: str, region: str, session: Any = None) -> str:
    from botocore.model import ServiceId
    from botocore.signers import RequestSigner

    from runplane.aws_clients import session as shared_session

    session = session or shared_session()
    # Only the signer is needed, not an STS client: building one loads STS's model and endpoint
    # rules, tens of milliseconds of reconcile's and the mirror's first call.
    signer = RequestSigner(
        ServiceId(STS_SERVICE_ID),
        region,
        "sts",
        "v4",
        session.get_credentials(),
        session.get_component("event_emitter"),
    )
    url = signer.generate_presigned_url(
        {
            "method": "GET",
            "url": f"https://sts.{region}.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15",
            "body": {},
            "headers": {"x-k8s-aws-id": cluster_name},
            "context": {},
        },
        region_name=region,
        expires_in=PRESIGN_EXPIRES_SECONDS,
        operation_name="",
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

    from runplane.aws_clients import client as aws_client

    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    cluster = aws_client("eks", region_name=region).describe_cluster(name=cluster_name)["cluster"]
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
