"""The control plane's own clients of DynamoDB and S3: signed HTTP, without botocore on the hot path.

Every API function reads or writes the table on its first request, so whatever its client costs
to make is paid at every cold start. botocore's is most of that cost (``benchmarks/handlers.py``:
importing it and urllib3, compiling their regular expressions, loading the service model, the
endpoint rules and the partitions: about 200 ms of a 320 ms cold start), for calls that are one
signed POST (DynamoDB's JSON protocol) or one signed PUT/GET/DELETE (S3 objects). So those two
are made here (``dynamodb_client``, ``s3_client``: botocore's calling convention and answers, botocore's
``standard`` retries, ``sigv4`` checked against botocore's signer), and so is what reconcile and the
status mirror need to reach EKS (``describe_eks_cluster``, and ``credentials`` to sign the cluster
token). The rarely used services (Scheduler, CloudWatch Logs, Lambda) keep botocore's clients, made
lazily (``runplane.aws.clients``).

Configuration is read as boto3 reads it: credentials from ``AWS_ACCESS_KEY_ID``/
``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN`` (Lambda sets them from the function's role), else
from botocore's provider chain (profiles, container and instance roles; imported only then);
the region from ``AWS_REGION``/``AWS_DEFAULT_REGION``; endpoints from ``AWS_ENDPOINT_URL_<SERVICE>``
or ``AWS_ENDPOINT_URL`` unless ``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS`` is true.
"""

from __future__ import annotations

import os
from functools import cache
from typing import TYPE_CHECKING, Any

from runplane.aws.http.sigv4 import Credentials

if TYPE_CHECKING:
    from runplane.aws.http.dynamodb import DynamoDBClient
    from runplane.aws.http.s3 import S3Client
    from runplane.aws.http.transport import Endpoint

# A client is made once per process for each endpoint and region the environment names, on first
# use (functools.cache: two threads racing at the very first call may each make one, and both
# work). The environment is read at each call, as boto3 reads it for each client it makes, so a
# process whose environment changes (the tests', pointed at a new moto) never keeps an old endpoint.


def dynamodb_client() -> DynamoDBClient:
    """The process's DynamoDB client for the configured endpoint, shared by threads."""
    where = region()
    return _dynamodb_at(_configured_endpoint("DYNAMODB") or f"https://dynamodb.{where}.amazonaws.com", where)


def s3_client() -> S3Client:
    """The process's S3 client for the configured endpoint, shared by threads."""
    where = region()
    configured = _configured_endpoint("S3")
    return _s3_at(configured or f"https://s3.{where}.amazonaws.com", where, path_style=configured is not None)


def describe_eks_cluster(name: str) -> dict[str, Any]:
    """EKS DescribeCluster's ``cluster`` (endpoint, certificate authority) of ``name``."""
    from runplane.aws.http.eks import describe_cluster

    where = region()
    endpoint = _endpoint(
        url=_configured_endpoint("EKS") or f"https://eks.{where}.amazonaws.com", service="eks", region=where
    )
    return describe_cluster(endpoint=endpoint, name=name)


def credentials() -> Credentials:
    """The credentials to sign with, now: from the environment (Lambda sets them from the
    function's role), else from botocore's provider chain (profiles, container and instance
    roles; imported only then), refreshed as it refreshes them."""
    access_key, secret_key = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if access_key and secret_key:
        return Credentials(access_key, secret_key, os.environ.get("AWS_SESSION_TOKEN") or None)
    frozen = _provider_chain().get_frozen_credentials()
    return Credentials(frozen.access_key or "", frozen.secret_key or "", frozen.token)


def region() -> str:
    """The region the functions run in (``AWS_REGION``, which Lambda sets)."""
    configured = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if configured:
        return configured
    from runplane.aws.clients import session

    found = session().get_config_variable("region")
    if not found:
        raise RuntimeError("no AWS region: set AWS_REGION (Lambda sets it)")
    return str(found)


@cache
def _dynamodb_at(url: str, region: str) -> DynamoDBClient:
    from runplane.aws.http.dynamodb import DynamoDBClient

    return DynamoDBClient(endpoint=_endpoint(url=url, service="dynamodb", region=region))


@cache
def _s3_at(url: str, region: str, *, path_style: bool) -> S3Client:
    from runplane.aws.http.s3 import S3Client

    return S3Client(endpoint=_endpoint(url=url, service="s3", region=region), path_style=path_style)


def _endpoint(*, url: str, service: str, region: str) -> Endpoint:
    from runplane.aws.http.transport import Endpoint

    return Endpoint(url=url, service=service, region=region, credentials=credentials)


def _configured_endpoint(service_env_name: str) -> str | None:
    if os.environ.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "").lower() == "true":
        return None
    return os.environ.get(f"AWS_ENDPOINT_URL_{service_env_name}") or os.environ.get("AWS_ENDPOINT_URL") or None


@cache
def _provider_chain() -> Any:
    """botocore's credentials (a RefreshableCredentials for roles), when the environment has none."""
    from runplane.aws.clients import session

    resolved = session().get_credentials()
    if resolved is None:
        raise RuntimeError("no AWS credentials: none in the environment, and botocore's provider chain found none")
    return resolved
