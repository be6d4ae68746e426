"""The local front's JWT authorizer: API Gateway's checks and the claims it hands on (no network:
the issuer's discovery document and key set are served from memory)."""

from __future__ import annotations

import base64
import json

import pytest

from local_stack.issuer import LocalIssuer
from local_stack.jwt_authorizer import KEY_REFRESH_MIN_SECONDS, JwtAuthorizer, payload_v2_claims
from local_stack.template import JwtAuthorizerConfig

AUDIENCE = "the-api"
USER = "runplane/user"


@pytest.fixture(scope="module")
def issuer():
    local = LocalIssuer(audience=AUDIENCE)  # not started: its documents are read in memory
    yield local
    local.stop()


class Documents:
    """The issuer's discovery document and key set, counting the fetches."""

    def __init__(self, issuer: LocalIssuer) -> None:
        self.issuer = issuer
        self.fetches = 0

    def __call__(self, url: str) -> dict:
        self.fetches += 1
        if url.endswith("/.well-known/openid-configuration"):
            return self.issuer.discovery_document()
        if url == self.issuer.discovery_document()["jwks_uri"]:
            return self.issuer.key_set()
        raise OSError(f"nothing at {url}")


def authorizer_for(issuer: LocalIssuer, *, clock=None, audience=(AUDIENCE,)) -> tuple[JwtAuthorizer, Documents]:
    documents = Documents(issuer)
    config = JwtAuthorizerConfig(name="OAuth2", issuer=issuer.url, audience=audience, identity_header="authorization")
    kwargs = {"clock": clock} if clock else {}
    return JwtAuthorizer(config, fetch_json=documents, **kwargs), documents


def test_a_valid_token_passes_with_or_without_bearer(issuer):
    authorizer, _ = authorizer_for(issuer)
    token = issuer.mint(subject="alice", scopes=[USER])
    for header in (f"Bearer {token}", f"bearer {token}", token):
        decision = authorizer.authorize({"authorization": header}, [USER])
        assert decision.allowed and decision.status == 200
        assert decision.context["jwt"]["claims"]["sub"] == "alice"
        assert decision.context["jwt"]["scopes"] == [USER]


def test_scopes_are_null_on_a_route_without_scopes(issuer):
    authorizer, _ = authorizer_for(issuer)
    decision = authorizer.authorize({"authorization": issuer.mint(subject="a", scopes=[USER])}, [])
    assert decision.allowed and decision.context["jwt"]["scopes"] is None


def test_a_route_scope_missing_from_the_token_is_403(issuer):
    authorizer, _ = authorizer_for(issuer)
    decision = authorizer.authorize({"authorization": issuer.mint(subject="a", scopes=[USER])}, ["runplane/data-plane"])
    assert (decision.status, json.loads(decision.body)) == (403, {"message": "Forbidden"})
    assert 'error="insufficient_scope"' in decision.headers["www-authenticate"]


def test_one_of_the_route_scopes_is_enough_and_scp_arrays_count(issuer):
    authorizer, _ = authorizer_for(issuer)
    token = issuer.mint(subject="a", scopes=["other", USER])
    assert authorizer.authorize({"authorization": token}, ["x", USER]).allowed
    okta_style = issuer.mint(subject="a", scopes=[], without=["scope"], extra_claims={"scp": ["other", USER]})
    decision = authorizer.authorize({"authorization": okta_style}, [USER])
    assert decision.allowed and decision.context["jwt"]["scopes"] == ["other", USER]


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"lifetime_seconds": -1}, "expired"),
        ({"audience": "another-api"}, "audience"),
        ({"issuer": "https://elsewhere.example.com"}, "issuer"),
        ({"issued_at": 4_000_000_000}, "iat"),
    ],
)
def test_bad_claims_are_401_saying_why(issuer, claims, reason):
    authorizer, _ = authorizer_for(issuer)
    decision = authorizer.authorize({"authorization": issuer.mint(subject="a", scopes=[USER], **claims)}, [USER])
    assert (decision.status, json.loads(decision.body)) == (401, {"message": "Unauthorized"})
    assert reason in decision.headers["www-authenticate"]


def test_client_id_stands_for_a_missing_audience_only(issuer):
    authorizer, _ = authorizer_for(issuer, audience=("app-client",))
    without_aud = issuer.mint(subject="a", scopes=[USER], client_id="app-client", without=["aud"])
    assert authorizer.authorize({"authorization": without_aud}, [USER]).allowed
    # with an aud, the aud decides even when client_id would match
    with_aud = issuer.mint(subject="a", scopes=[USER], client_id="app-client", audience="another")
    assert authorizer.authorize({"authorization": with_aud}, [USER]).status == 401


@pytest.mark.parametrize("token", ["", "Bearer ", "a.b", "a.b.c", "e30.e30.", "not a token at all"])
def test_missing_or_malformed_tokens_are_401(issuer, token):
    authorizer, _ = authorizer_for(issuer)
    assert authorizer.authorize({"authorization": token} if token else {}, [USER]).status == 401


def test_only_rsa_signatures_with_a_known_kid_are_accepted(issuer):
    authorizer, _ = authorizer_for(issuer)
    token = issuer.mint(subject="a", scopes=[USER])
    _, payload, signature = token.split(".")
    for forged_header in ({"alg": "HS256", "kid": issuer.key_id}, {"alg": "RS256"}, {"alg": "RS256", "kid": "x"}):
        forged = f"{_b64(forged_header)}.{payload}.{signature}"
        assert authorizer.authorize({"authorization": forged}, [USER]).status == 401, forged_header


def test_the_key_set_is_cached_and_refetched_for_an_unknown_kid_at_most_every_few_seconds(issuer):
    now = [1_000.0]
    authorizer, documents = authorizer_for(issuer, clock=lambda: now[0])
    token = issuer.mint(subject="a", scopes=[USER], issued_at=900)
    assert authorizer.authorize({"authorization": token}, [USER]).allowed
    assert authorizer.authorize({"authorization": token}, [USER]).allowed
    assert documents.fetches == 2  # discovery + keys, once

    unknown = f"{_b64({'alg': 'RS256', 'kid': 'rotated'})}.{token.split('.', 1)[1]}"
    assert authorizer.authorize({"authorization": unknown}, [USER]).status == 401
    assert documents.fetches == 2  # too soon to refetch
    now[0] += KEY_REFRESH_MIN_SECONDS + 1
    assert authorizer.authorize({"authorization": unknown}, [USER]).status == 401
    assert documents.fetches == 4


def test_unreachable_keys_are_401(issuer):
    config = JwtAuthorizerConfig(name="A", issuer=issuer.url, audience=(AUDIENCE,), identity_header="authorization")

    def unreachable(url):
        raise OSError("connection refused")

    decision = JwtAuthorizer(config, fetch_json=unreachable).authorize(
        {"authorization": issuer.mint(subject="a", scopes=[USER])}, [USER]
    )
    assert decision.status == 401


def test_claims_reach_the_handler_as_payload_v2_strings():
    claims = {
        "sub": "alice",
        "exp": 1_700_000_000,
        "ratio": 0.5,
        "admin": True,
        "projects": ["a", "b"],
        "nested": {"k": 1},
        "gone": None,
    }
    assert payload_v2_claims(claims) == {
        "sub": "alice",
        "exp": "1700000000",
        "ratio": "0.5",
        "admin": "true",
        "projects": "[a b]",
        "nested": '{"k":1}',
    }


def _b64(document: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(document).encode()).rstrip(b"=").decode()
