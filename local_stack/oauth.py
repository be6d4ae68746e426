"""OAuth 2.0 as the local identity provider speaks it: its clients, the requests and codes of the
authorization-code grant with PKCE (RFC 7636), its error answers (RFC 6749), and the small
encodings the grants need. ``local_stack.issuer`` holds the state and the rules; this is what
they are written in.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

# RFC 7636 4.2: "plain" sends the verifier itself as the challenge, which protects nothing once the
# authorization request is seen; S256 is the only method offered, and a request without one is refused.
CHALLENGE_METHOD = "S256"
VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")  # RFC 7636 4.1: 43 to 128 unreserved characters
CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")  # a SHA-256 digest, base64url without padding


@dataclass(frozen=True)
class Client:
    """A confidential client of the issuer (client credentials grant)."""

    client_id: str
    secret: str
    scopes: tuple[str, ...]
    # Projects written into its tokens' ``projects`` claim; None: a project-agnostic token.
    projects: tuple[str, ...] | None = None


@dataclass(frozen=True, kw_only=True)
class PublicClient:
    """A public client of the issuer (authorization code with PKCE, no secret): a browser app, or
    the SDK's browser login. Redirect URIs are matched exactly."""

    client_id: str
    redirect_uris: tuple[str, ...]
    scopes: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class AuthorizationRequest:
    """An authorization request that passed every check: what the consent page shows, and what
    the code it leads to is bound to."""

    client_id: str
    redirect_uri: str
    state: str
    code_challenge: str
    scopes: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class IssuedCode:
    request: AuthorizationRequest
    expires_at: float  # on the issuer's clock


class AuthorizationError(Exception):
    """A refused authorization request. ``location`` is where the browser is sent with the error
    (RFC 6749 4.1.2.1); None when the client or the redirect URI is unknown: shown, never redirected."""

    def __init__(self, error: str, description: str, *, location: str | None = None) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.location = location


class OAuthError(Exception):
    """An RFC 6749 error response of the token endpoint."""

    def __init__(self, error: str, description: str, *, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


def form_fields(encoded: str) -> dict[str, str]:
    return {name: values[-1] for name, values in urllib.parse.parse_qs(encoded).items()}


def with_query(url: str, **params: str) -> str:
    """``url`` with ``params`` (the empty ones left out) added to its query."""
    query = urllib.parse.urlencode({name: value for name, value in params.items() if value})
    return f"{url}{'&' if '?' in url else '?'}{query}"


def origin_of(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def s256(verifier: str) -> str:
    """RFC 7636 4.2: BASE64URL(SHA256(verifier)), without padding."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


def client_credentials(form: Mapping[str, str], authorization: str | None) -> tuple[str, str]:
    """client_secret_basic (RFC 6749 2.3.1: each part form-urlencoded, then Basic) or client_secret_post."""
    if authorization and authorization[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise OAuthError("invalid_client", "malformed Basic credentials", status=401) from None
        client_id, separator, secret = decoded.partition(":")
        if not separator:
            raise OAuthError("invalid_client", "malformed Basic credentials", status=401)
        return urllib.parse.unquote_plus(client_id), urllib.parse.unquote_plus(secret)
    if form.get("client_id") and form.get("client_secret"):
        return form["client_id"], form["client_secret"]
    raise OAuthError("invalid_client", "client authentication is required", status=401)
