"""AuthMetadataService (functions/auth_metadata): the identity provider's metadata relayed,
cached and retried as Flyte's runs service does it; the public client's settings."""

from __future__ import annotations

import pytest
from flyteidl2.auth import auth_service_pb2 as auth

from functions.auth_metadata.service import (
    FETCH_ATTEMPTS,
    METADATA_CACHE_SECONDS,
    AuthMetadata,
    AuthMetadataSettings,
    MetadataFetchError,
)
from runplane.connect.errors import Code
from runplane.ops.settings import SettingsError
from tests.refusals import REFUSED, code_of

ISSUER = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc"
DOCUMENT = {
    "issuer": ISSUER,
    "authorization_endpoint": "https://login.example.com/oauth2/authorize",
    "token_endpoint": "https://login.example.com/oauth2/token",
    "jwks_uri": f"{ISSUER}/.well-known/jwks.json",
    "response_types_supported": ["code", "token"],
    "scopes_supported": ["openid", "runplane/user"],
    "claims_supported": ["sub", "email"],  # not in the message: ignored
    "code_challenge_methods_supported": ["S256"],
}


class Fetcher:
    def __init__(self, *answers):
        self.answers = list(answers)
        self.urls: list[str] = []

    def __call__(self, url):
        self.urls.append(url)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


def service(fetcher, *, now=None, **settings) -> AuthMetadata:
    clock = now or [0.0]
    return AuthMetadata(
        settings=AuthMetadataSettings(issuer=ISSUER, **settings),
        fetch_json=fetcher,
        clock=lambda: clock[0],
        sleep=lambda seconds: None,
    )


def test_the_metadata_is_relayed_from_the_issuers_well_known_path():
    fetcher = Fetcher(DOCUMENT)
    metadata = service(fetcher).get_oauth2_metadata(auth.GetOAuth2MetadataRequest())
    assert fetcher.urls == [f"{ISSUER}/.well-known/openid-configuration"]
    assert metadata.issuer == ISSUER and metadata.token_endpoint == DOCUMENT["token_endpoint"]
    assert list(metadata.code_challenge_methods_supported) == ["S256"]


def test_the_metadata_is_cached_for_five_minutes():
    fetcher, now = Fetcher(DOCUMENT), [0.0]
    metadata = service(fetcher, now=now)
    metadata.get_oauth2_metadata(auth.GetOAuth2MetadataRequest())
    metadata.get_oauth2_metadata(auth.GetOAuth2MetadataRequest())
    assert len(fetcher.urls) == 1
    now[0] += METADATA_CACHE_SECONDS + 1
    metadata.get_oauth2_metadata(auth.GetOAuth2MetadataRequest())
    assert len(fetcher.urls) == 2


def test_transient_failures_are_retried_then_unavailable():
    flaky = Fetcher(MetadataFetchError("503", retryable=True), DOCUMENT)
    assert service(flaky).get_oauth2_metadata(auth.GetOAuth2MetadataRequest()).issuer == ISSUER
    down = Fetcher(MetadataFetchError("connection refused", retryable=True))
    with pytest.raises(REFUSED) as error:
        service(down).get_oauth2_metadata(auth.GetOAuth2MetadataRequest())
    assert code_of(error.value) == Code.UNAVAILABLE and len(down.urls) == FETCH_ATTEMPTS


@pytest.mark.parametrize(
    "answer", [MetadataFetchError("404", retryable=False), ["not", "an", "object"], {"issuer": ["not a string"]}]
)
def test_a_misconfigured_issuer_is_internal_at_once(answer):
    fetcher = Fetcher(answer)
    with pytest.raises(REFUSED) as error:
        service(fetcher).get_oauth2_metadata(auth.GetOAuth2MetadataRequest())
    assert code_of(error.value) == Code.INTERNAL and len(fetcher.urls) == 1


def test_the_public_client_config_is_the_templates():
    config = service(Fetcher(DOCUMENT), client_id="pkce-client", scopes=("runplane/user",), audience="api")
    answer = config.get_public_client_config(auth.GetPublicClientConfigRequest())
    assert (answer.client_id, list(answer.scopes), answer.audience) == ("pkce-client", ["runplane/user"], "api")
    assert answer.redirect_uri == "http://localhost:53593/callback"
    assert answer.authorization_metadata_key == "authorization"


def test_settings_from_the_environment():
    settings = AuthMetadataSettings.from_env(
        {"AUTH_ISSUER": ISSUER + "/", "AUTH_SCOPES": "runplane/user, openid", "AUTH_CLIENT_ID": "c"}
    )
    assert settings.scopes == ("runplane/user", "openid") and settings.client_id == "c"
    assert settings.metadata_url == f"{ISSUER}/.well-known/openid-configuration"
    custom = AuthMetadataSettings.from_env(
        {"AUTH_ISSUER": ISSUER, "AUTH_METADATA_PATH": ".well-known/oauth-authorization-server"}
    )
    assert custom.metadata_url == f"{ISSUER}/.well-known/oauth-authorization-server"


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"AUTH_ISSUER": "cognito"},
        {"AUTH_ISSUER": ISSUER, "AUTH_METADATA_PATH": "/etc/passwd"},
        {"AUTH_ISSUER": ISSUER, "AUTH_METADATA_PATH": "https://evil.example.com/metadata"},
    ],
)
def test_bad_settings_name_the_variable(environ):
    with pytest.raises(SettingsError, match="AUTH_"):
        AuthMetadataSettings.from_env(environ)
