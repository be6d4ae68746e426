"""The local identity provider's authorization-code grant with PKCE (RFC 7636, S256 only) for a
public client: what is refused, and how (an error page, a redirect with the error, or the token
endpoint's RFC 6749 error), and the token a good exchange gives, checked as API Gateway checks it."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest

from local_stack.issuer import (
    CODE_LIFETIME_SECONDS,
    AuthorizationError,
    LocalIssuer,
    OAuthError,
    PublicClient,
)
from local_stack.jwt_authorizer import JwtAuthorizer
from local_stack.template import JwtAuthorizerConfig

AUDIENCE = "the-api"
USER = "runplane/user"
CLIENT = "console"
CALLBACK = "http://127.0.0.1:8080/v2/callback"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


VERIFIER = secrets.token_urlsafe(32)


def authorize_params(**overrides: str) -> dict[str, str]:
    params = {
        "client_id": CLIENT,
        "redirect_uri": CALLBACK,
        "response_type": "code",
        "state": "st-1",
        "code_challenge": s256(VERIFIER),
        "code_challenge_method": "S256",
        "scope": USER,
    }
    params.update(overrides)
    return {name: value for name, value in params.items() if value}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def issuer(clock: Clock) -> Iterator[LocalIssuer]:
    local = LocalIssuer(
        audience=AUDIENCE,
        public_clients=[PublicClient(client_id=CLIENT, redirect_uris=(CALLBACK,), scopes=(USER,))],
        clock=clock,
    )
    yield local
    local.stop()


def code_of(location: str) -> str:
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)
    assert query["state"] == ["st-1"]
    return query["code"][0]


def issued_code(issuer: LocalIssuer, **overrides: str) -> str:
    return code_of(issuer.approve(issuer.authorization_request(authorize_params(**overrides))))


def exchange(issuer: LocalIssuer, code: str, **overrides: str) -> dict:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": CALLBACK,
        "client_id": CLIENT,
        "code_verifier": VERIFIER,
    }
    form.update(overrides)
    return issuer.grant(form, None)


def refused(issuer: LocalIssuer, code: str, **overrides: str) -> tuple[str, int]:
    with pytest.raises(OAuthError) as raised:
        exchange(issuer, code, **overrides)
    return raised.value.error, raised.value.status


def test_the_token_verifies_against_the_key_set_with_the_audience_and_the_clients_scopes(issuer):
    answer = exchange(issuer, issued_code(issuer))
    assert (answer["token_type"], answer["scope"]) == ("Bearer", USER)
    config = JwtAuthorizerConfig(
        name="OAuth2", issuer=issuer.url, audience=(AUDIENCE,), identity_header="authorization"
    )
    documents = {issuer.url + "/.well-known/openid-configuration": issuer.discovery_document()}
    documents[issuer.discovery_document()["jwks_uri"]] = issuer.key_set()
    decision = JwtAuthorizer(config, fetch_json=documents.__getitem__).authorize(
        {"authorization": f"Bearer {answer['access_token']}"}, [USER]
    )
    assert decision.allowed
    claims = decision.context["jwt"]["claims"]
    assert (claims["sub"], claims["client_id"], claims["aud"]) == (issuer.person, CLIENT, AUDIENCE)
    assert issuer.granted[CLIENT] == 1


def test_no_scope_asked_is_every_scope_of_the_client(issuer):
    request = issuer.authorization_request(authorize_params(scope=""))
    assert request.scopes == (USER,)


def test_a_wrong_verifier_is_invalid_grant_and_spends_the_code(issuer):
    code = issued_code(issuer)
    assert refused(issuer, code, code_verifier=secrets.token_urlsafe(32)) == ("invalid_grant", 400)
    assert refused(issuer, code) == ("invalid_grant", 400)  # the right one, too late
    assert refused(issuer, issued_code(issuer), code_verifier="") == ("invalid_request", 400)


def test_a_code_is_used_once(issuer):
    code = issued_code(issuer)
    exchange(issuer, code)
    assert refused(issuer, code) == ("invalid_grant", 400)


def test_an_expired_code_is_refused(issuer, clock):
    code = issued_code(issuer)
    clock.now += CODE_LIFETIME_SECONDS
    assert refused(issuer, code) == ("invalid_grant", 400)


def test_the_code_is_bound_to_its_redirect_uri_and_client(issuer):
    assert refused(issuer, issued_code(issuer), redirect_uri=CALLBACK + "x") == ("invalid_grant", 400)
    issuer.register(PublicClient(client_id="other", redirect_uris=(CALLBACK,), scopes=(USER,)))
    assert refused(issuer, issued_code(issuer), client_id="other") == ("invalid_grant", 400)
    assert refused(issuer, issued_code(issuer), client_id="nobody") == ("invalid_client", 401)


def test_an_unknown_client_or_redirect_uri_is_shown_never_redirected(issuer):
    for params in (authorize_params(client_id="nobody"), authorize_params(redirect_uri="https://evil.example/cb")):
        with pytest.raises(AuthorizationError) as raised:
            issuer.authorization_request(params)
        assert raised.value.location is None


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"code_challenge_method": "plain", "code_challenge": VERIFIER[:43]}, "invalid_request"),
        ({"code_challenge_method": ""}, "invalid_request"),  # RFC 7636 reads a missing method as plain
        ({"code_challenge": ""}, "invalid_request"),
        ({"code_challenge": "too-short"}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"state": ""}, "invalid_request"),
        ({"scope": "runplane/data-plane"}, "invalid_scope"),
    ],
)
def test_other_faults_go_back_to_the_redirect_uri(issuer, overrides, error):
    with pytest.raises(AuthorizationError) as raised:
        issuer.authorization_request(authorize_params(**overrides))
    assert raised.value.location is not None and raised.value.location.startswith(CALLBACK + "?")
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(raised.value.location).query)
    assert query["error"] == [error]


def test_declining_redirects_with_access_denied(issuer):
    location = issuer.deny(issuer.authorization_request(authorize_params()))
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)
    assert (query["error"], query["state"]) == (["access_denied"], ["st-1"])


def test_the_discovery_document_offers_the_code_grant_with_s256_only(issuer):
    document = issuer.discovery_document()
    assert document["authorization_endpoint"] == issuer.url + "/oauth2/authorize"
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert set(document["grant_types_supported"]) == {"authorization_code", "client_credentials"}


class NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def fetch(url: str, data: bytes | None = None, headers: dict[str, str] | None = None):
    opener = urllib.request.build_opener(NoRedirects)
    try:
        response = opener.open(urllib.request.Request(url, data=data, headers=headers or {}), timeout=10)
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()
    with response:
        return response.status, response.headers, response.read()


def test_over_http_the_page_its_button_and_the_browsers_token_request(issuer):
    issuer.start()
    query = urllib.parse.urlencode(authorize_params())
    status, headers, body = fetch(f"{issuer.authorization_endpoint}?{query}")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert b'id="approve"' in body and issuer.person.encode() in body

    form = urllib.parse.urlencode({**authorize_params(), "decision": "approve"}).encode()
    status, _, body = fetch(issuer.authorization_endpoint, data=form)  # no consent code: no code
    assert status == 403 and b'id="wrong-code"' in body
    wrong = urllib.parse.urlencode({**authorize_params(), "decision": "approve", "consent_code": "x"}).encode()
    assert fetch(issuer.authorization_endpoint, data=wrong)[0] == 403
    typed = {**authorize_params(), "decision": "approve", "consent_code": issuer.consent_code}
    form = urllib.parse.urlencode(typed).encode()
    status, headers, _ = fetch(issuer.authorization_endpoint, data=form)
    assert status == 303 and headers["location"].startswith(CALLBACK + "?code=")
    code = code_of(headers["location"])

    token_form = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK, "client_id": CLIENT}
    origin = {"Origin": "http://127.0.0.1:8080"}
    status, headers, body = fetch(issuer.token_endpoint, urllib.parse.urlencode(token_form).encode(), origin)
    assert (status, json.loads(body)["error"]) == (400, "invalid_request")  # no verifier; the code is spent
    assert headers["access-control-allow-origin"] == "http://127.0.0.1:8080"  # the console may read why

    code = issued_code(issuer)
    token_form.update(code=code, code_verifier=VERIFIER)
    status, headers, body = fetch(issuer.token_endpoint, urllib.parse.urlencode(token_form).encode(), origin)
    assert status == 200 and json.loads(body)["access_token"]
    assert headers["access-control-allow-origin"] == "http://127.0.0.1:8080"
    _, headers, _ = fetch(
        issuer.token_endpoint, urllib.parse.urlencode(token_form).encode(), {"Origin": "https://elsewhere.example"}
    )
    assert headers["access-control-allow-origin"] is None


def test_over_http_a_bad_redirect_uri_is_an_error_page_not_a_redirect(issuer):
    issuer.start()
    query = urllib.parse.urlencode(authorize_params(redirect_uri="https://evil.example/cb"))
    status, headers, body = fetch(f"{issuer.authorization_endpoint}?{query}")
    assert status == 400 and "location" not in headers and b"not registered" in body
    query = urllib.parse.urlencode(authorize_params(code_challenge_method="plain"))
    status, headers, _ = fetch(f"{issuer.authorization_endpoint}?{query}")
    assert status == 303 and "error=invalid_request" in headers["location"]
