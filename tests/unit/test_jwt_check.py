"""The streaming function's own JWT check (runplane.connect.jwt_check): what the HTTP API's
authorizer accepts and refuses, signed by a real RSA key (joserfc, the local issuer's library)."""

from __future__ import annotations

import time

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from runplane.connect.jwt_check import Refused, TokenCheck

ISSUER = "https://issuer.example.com"
KEY = RSAKey.generate_key(2048, parameters={"kid": "k1"})
OTHER_KEY = RSAKey.generate_key(2048, parameters={"kid": "k1"})


def fetch(url: str) -> dict:
    if url == ISSUER + "/.well-known/openid-configuration":
        return {"jwks_uri": ISSUER + "/jwks"}
    assert url == ISSUER + "/jwks"
    return {"keys": [KEY.as_dict(private=False)]}


def token(key=KEY, algorithm="RS256", **claims) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": "api", "exp": now + 60, "iat": now, "scope": "user data", **claims}
    claims_set = {k: v for k, v in body.items() if v is not None}
    return jwt.encode({"alg": algorithm, "kid": "k1"}, claims_set, key, algorithms=[algorithm])


@pytest.fixture
def check():
    return TokenCheck(issuer=ISSUER, audiences=["api"], fetch_json=fetch)


@pytest.mark.parametrize("algorithm", ["RS256", "RS384", "RS512"])
def test_a_valid_token_gives_its_claims_as_text(check, algorithm):
    claims = check.claims({"authorization": f"Bearer {token(algorithm=algorithm, projects=['p1', 'p2'])}"}, ["user"])
    assert claims["iss"] == ISSUER and claims["projects"] == "[p1 p2]"


@pytest.mark.parametrize(
    "bad",
    [
        lambda: "",
        lambda: "not-a-jwt",
        lambda: token(key=OTHER_KEY),
        lambda: token(iss="https://elsewhere.example.com"),
        lambda: token(aud="another-api"),
        lambda: token(exp=int(time.time()) - 1),
        lambda: token(iat=int(time.time()) + 3600),
        lambda: token()[:-4] + "AAAA",
    ],
)
def test_a_bad_token_is_401(check, bad):
    with pytest.raises(Refused) as info:
        check.claims({"authorization": f"Bearer {bad()}"}, ["user"])
    assert info.value.status == 401


def test_a_token_without_the_routes_scope_is_403(check):
    with pytest.raises(Refused) as info:
        check.claims({"authorization": token(scope="user")}, ["data"])
    assert info.value.status == 403


def test_a_token_without_aud_is_checked_by_its_client_id(check):
    assert check.claims({"authorization": token(aud=None, client_id="api")}, ["user"])["client_id"] == "api"
