"""The EKS bearer token reconcile mints from its IAM role (no kubeconfig on AWS)."""

import base64
from urllib.parse import parse_qs, urlparse

import botocore.session

from runplane.kube.eks_auth import TOKEN_PREFIX, RefreshingToken, mint_token


def session():
    s = botocore.session.get_session()
    s.set_credentials("AKIDEXAMPLE", "secret", "session-token")
    return s


def test_token_is_a_presigned_get_caller_identity_bound_to_the_cluster():
    token = mint_token(cluster_name="flyte", region="eu-west-1", session=session())
    assert token.startswith(TOKEN_PREFIX) and "=" not in token
    encoded = token[len(TOKEN_PREFIX) :]
    url = urlparse(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode())
    query = parse_qs(url.query)
    assert url.hostname == "sts.eu-west-1.amazonaws.com"
    assert query["Action"] == ["GetCallerIdentity"] and query["X-Amz-Expires"] == ["60"]
    assert "x-k8s-aws-id" in query["X-Amz-SignedHeaders"][0]
    assert query["X-Amz-Security-Token"] == ["session-token"]


def test_the_token_is_reused_until_it_is_due_for_refresh(monkeypatch):
    minted = []
    monkeypatch.setattr(
        "runplane.kube.eks_auth.mint_token", lambda **kwargs: minted.append(1) or f"{TOKEN_PREFIX}{len(minted)}"
    )
    token = RefreshingToken(cluster_name="flyte", region="us-east-1")
    assert token.value() == token.value() == f"{TOKEN_PREFIX}1"
    token._minted_at -= 11 * 60  # past the ten-minute refresh point
    assert token.value() == f"{TOKEN_PREFIX}2"
