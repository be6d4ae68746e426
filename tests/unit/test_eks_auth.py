"""The EKS bearer token reconcile mints from its IAM role (no kubeconfig on AWS): the presigned
STS GetCallerIdentity URL botocore's signer (what ``aws eks get-token`` uses) makes."""

import base64
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlparse

import botocore.session
from botocore.model import ServiceId
from botocore.signers import RequestSigner

from runplane.aws.http.sigv4 import Credentials
from runplane.kube.eks_auth import TOKEN_PREFIX, RefreshingToken, mint_token

CREDENTIALS = Credentials("AKIDEXAMPLE", "secret", "session-token")


def decoded(token: str):
    assert token.startswith(TOKEN_PREFIX) and "=" not in token
    encoded = token[len(TOKEN_PREFIX) :]
    return urlparse(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode())


def botocore_token_url(region: str, cluster: str):
    session = botocore.session.get_session()
    session.set_credentials(CREDENTIALS.access_key, CREDENTIALS.secret_key, CREDENTIALS.token)
    credentials = session.get_credentials()
    assert credentials is not None
    signer = RequestSigner(ServiceId("STS"), region, "sts", "v4", credentials, session.get_component("event_emitter"))
    return urlparse(
        signer.generate_presigned_url(
            {
                "method": "GET",
                "url": f"https://sts.{region}.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15",
                "body": {},
                "headers": {"x-k8s-aws-id": cluster},
                "context": {},
            },
            region_name=region,
            expires_in=60,
            operation_name="",
        )
    )


def test_token_is_a_presigned_get_caller_identity_bound_to_the_cluster():
    url = decoded(mint_token(cluster_name="flyte", region="eu-west-1", credentials=CREDENTIALS))
    query = parse_qs(url.query)
    assert url.hostname == "sts.eu-west-1.amazonaws.com"
    assert query["Action"] == ["GetCallerIdentity"] and query["X-Amz-Expires"] == ["60"]
    assert "x-k8s-aws-id" in query["X-Amz-SignedHeaders"][0]
    assert query["X-Amz-Security-Token"] == ["session-token"]


def test_token_is_signed_exactly_as_botocore_signs_it(monkeypatch):
    theirs = botocore_token_url("eu-west-1", "flyte")
    their_query = {k: v[0] for k, v in parse_qs(theirs.query).items()}
    moment = datetime.strptime(their_query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)

    class Frozen(datetime):
        @classmethod
        def now(cls, tz=None):
            return moment

    monkeypatch.setattr("runplane.kube.eks_auth.datetime", Frozen)
    ours = decoded(mint_token(cluster_name="flyte", region="eu-west-1", credentials=CREDENTIALS))
    assert (ours.netloc, ours.path) == (theirs.netloc, theirs.path)
    assert {k: v[0] for k, v in parse_qs(ours.query).items()} == their_query


def test_the_token_is_reused_until_it_is_due_for_refresh(monkeypatch):
    minted = []
    monkeypatch.setattr(
        "runplane.kube.eks_auth.mint_token", lambda **kwargs: minted.append(1) or f"{TOKEN_PREFIX}{len(minted)}"
    )
    token = RefreshingToken(cluster_name="flyte", region="us-east-1")
    assert token.value() == token.value() == f"{TOKEN_PREFIX}1"
    token._minted_at -= 11 * 60  # past the ten-minute refresh point
    assert token.value() == f"{TOKEN_PREFIX}2"
