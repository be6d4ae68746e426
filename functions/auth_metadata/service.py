"""AuthMetadataService: where to get a token, answered to anyone (no token yet).

As Flyte's runs service does it (``runs/service/auth_metadata_service.go``):

- GetOAuth2Metadata relays the identity provider's own metadata document, fetched from
  ``<issuer>/<metadata path>`` (the path relative to the issuer, so the issuer cannot be bypassed),
  with bounded retries on network errors and 5xx, cached for five minutes per container. A 4xx or
  an unreadable document is ``internal`` (this deployment is misconfigured); an identity provider
  that stays unreachable is ``unavailable``.
- GetPublicClientConfig returns the public (PKCE) client's id, redirect URI, scopes and audience,
  and the header tokens travel in (``authorization``, what the HTTP API's authorizer reads).

The default metadata path is OpenID Connect's ``.well-known/openid-configuration`` (Cognito
publishes only that one; Flyte defaults to RFC 8414's ``oauth-authorization-server``).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from flyteidl2.auth import auth_service_pb2 as auth
from google.protobuf import json_format

from runplane.connect.errors import Code, ConnectError
from runplane.ops.settings import SettingsError

logger = logging.getLogger(__name__)

# The SDK and CLI call discovery once per login; a short cache spares the identity provider a
# fetch per call and still follows a change of its endpoints within minutes (Flyte: 5 minutes).
METADATA_CACHE_SECONDS = 300.0
# Three tries a second apart, 5 s each, fit the function's 29 s timeout with room to answer.
FETCH_ATTEMPTS = 3
FETCH_RETRY_DELAY_SECONDS = 1.0
FETCH_TIMEOUT_SECONDS = 5.0
MAX_METADATA_BYTES = 1 << 20  # RFC 8414 documents are a few KB
AUTHORIZATION_HEADER = "authorization"  # the HTTP API authorizer's identity source
DEFAULT_METADATA_PATH = ".well-known/openid-configuration"
DEFAULT_REDIRECT_URI = "http://localhost:53593/callback"  # the flyte SDK's PKCE callback

_ABSOLUTE_URL = re.compile(r"^https?://[^/\s]+(/\S*)?$")


class MetadataFetchError(Exception):
    """The document could not be fetched; ``retryable`` for network errors and 5xx."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


FetchJson = Callable[[str], Any]


@dataclass(frozen=True, kw_only=True)
class AuthMetadataSettings:
    issuer: str
    metadata_path: str = DEFAULT_METADATA_PATH
    client_id: str = ""
    redirect_uri: str = DEFAULT_REDIRECT_URI
    scopes: tuple[str, ...] = ()
    audience: str = ""  # sent to the token endpoint when the identity provider needs it (Auth0, Okta)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> AuthMetadataSettings:
        issuer = environ.get("AUTH_ISSUER", "")
        if not _ABSOLUTE_URL.match(issuer):
            raise SettingsError(f"environment variable AUTH_ISSUER={issuer!r} must be an absolute http(s) URL")
        path = environ.get("AUTH_METADATA_PATH") or DEFAULT_METADATA_PATH
        parsed = urllib.parse.urlsplit(path)
        if parsed.scheme or parsed.netloc or path.startswith("/"):
            raise SettingsError(
                f"environment variable AUTH_METADATA_PATH={path!r} must be relative to the issuer (no leading '/')"
            )
        return cls(
            issuer=issuer,
            metadata_path=path,
            client_id=environ.get("AUTH_CLIENT_ID", ""),
            redirect_uri=environ.get("AUTH_REDIRECT_URI") or DEFAULT_REDIRECT_URI,
            scopes=tuple(scope for scope in re.split(r"[\s,]+", environ.get("AUTH_SCOPES", "")) if scope),
            audience=environ.get("AUTH_AUDIENCE", ""),
        )

    @property
    def metadata_url(self) -> str:
        return urllib.parse.urljoin(self.issuer.rstrip("/") + "/", self.metadata_path)


class AuthMetadata:
    def __init__(
        self,
        *,
        settings: AuthMetadataSettings,
        fetch_json: FetchJson | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._settings = settings
        self._fetch_json = fetch_json or fetch_json_document
        self._clock = clock
        self._sleep = sleep
        self._cached: auth.GetOAuth2MetadataResponse | None = None
        self._cached_until = 0.0
        self._lock = threading.Lock()

    def get_public_client_config(
        self, request: auth.GetPublicClientConfigRequest
    ) -> auth.GetPublicClientConfigResponse:
        return auth.GetPublicClientConfigResponse(
            client_id=self._settings.client_id,
            redirect_uri=self._settings.redirect_uri,
            scopes=list(self._settings.scopes),
            authorization_metadata_key=AUTHORIZATION_HEADER,
            audience=self._settings.audience,
        )

    def get_oauth2_metadata(self, request: auth.GetOAuth2MetadataRequest) -> auth.GetOAuth2MetadataResponse:
        with self._lock:
            if self._cached is None or self._clock() >= self._cached_until:
                self._cached = self._fetch_metadata()
                self._cached_until = self._clock() + METADATA_CACHE_SECONDS
            response = auth.GetOAuth2MetadataResponse()
            response.CopyFrom(self._cached)
            return response

    def _fetch_metadata(self) -> auth.GetOAuth2MetadataResponse:
        url = self._settings.metadata_url
        for attempt in range(1, FETCH_ATTEMPTS + 1):
            try:
                document = self._fetch_json(url)
                break
            except MetadataFetchError as error:
                if not error.retryable:
                    logger.error("identity provider metadata refused", extra={"url": url, "error": str(error)})
                    raise ConnectError(
                        Code.INTERNAL, f"cannot read the identity provider's metadata: {error}"
                    ) from None
                logger.warning("identity provider metadata not fetched", extra={"url": url, "attempt": attempt})
                if attempt == FETCH_ATTEMPTS:
                    raise ConnectError(
                        Code.UNAVAILABLE, f"the identity provider's metadata is unavailable: {error}"
                    ) from None
                self._sleep(FETCH_RETRY_DELAY_SECONDS)
        if not isinstance(document, dict):
            raise ConnectError(Code.INTERNAL, "the identity provider's metadata is not a JSON object")
        try:
            # Real providers publish many more fields (claims_supported, ...): ignored, as Flyte does.
            return json_format.ParseDict(document, auth.GetOAuth2MetadataResponse(), ignore_unknown_fields=True)
        except json_format.ParseError as exc:
            raise ConnectError(Code.INTERNAL, f"the identity provider's metadata cannot be read: {exc}") from None


def fetch_json_document(url: str) -> Any:
    # Imported here, on the first fetch: urllib.request brings ssl, http.client and email (~20 ms of
    # the cold start), and GetPublicClientConfig, or a cached document, never fetches.
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT_SECONDS) as response:
            body = response.read(MAX_METADATA_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise MetadataFetchError(f"{url} answered {exc.code}", retryable=exc.code >= 500) from None
    except (urllib.error.URLError, OSError) as exc:
        raise MetadataFetchError(f"{url}: {exc}", retryable=True) from None
    if len(body) > MAX_METADATA_BYTES:
        raise MetadataFetchError(f"{url}: the document exceeds {MAX_METADATA_BYTES} bytes", retryable=False)
    try:
        return json.loads(body)
    except ValueError:
        raise MetadataFetchError(f"{url} is not JSON", retryable=False) from None
