"""The local stack's identity provider: what Cognito (or any OpenID Connect IdP) is on AWS.

An RSA key generated at start signs RS256 access tokens. On loopback it serves what API Gateway's
JWT authorizer and the flyte SDK read from an IdP:

- ``GET /.well-known/openid-configuration`` (also at ``/.well-known/oauth-authorization-server``):
  the issuer, the token endpoint and the key set's address;
- ``GET /.well-known/jwks.json``: the public key (``kid``, ``RS256``);
- ``POST /oauth2/token``: the ``client_credentials`` grant, as Cognito's token endpoint answers it
  (client authentication by HTTP Basic or in the form; ``scope`` optional, each requested scope
  must be one the client is allowed, and none requested means all of them).

There is no authorization-code (PKCE) or device flow locally: a person uses the user client's
credentials or a token printed at start. ``mint`` issues tokens directly, also malformed ones
(expired, another audience), for tests.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import secrets
import threading
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from joserfc import jwt
from joserfc.jwk import RSAKey

logger = logging.getLogger(__name__)

ALGORITHM = "RS256"  # API Gateway's JWT authorizers verify RSA signatures only
KEY_BITS = 2048
# Cognito's default access-token lifetime: long enough for a session, short enough to matter.
TOKEN_LIFETIME_SECONDS = 3600
DISCOVERY_PATHS = ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server")
JWKS_PATH = "/.well-known/jwks.json"
TOKEN_PATH = "/oauth2/token"
MAX_FORM_BYTES = 64 * 1024  # a token request is a few hundred bytes


@dataclass(frozen=True)
class Client:
    """A confidential client of the issuer (client credentials grant)."""

    client_id: str
    secret: str
    scopes: tuple[str, ...]
    # Projects written into its tokens' ``projects`` claim; None: a project-agnostic token.
    projects: tuple[str, ...] | None = None


class OAuthError(Exception):
    """An RFC 6749 error response of the token endpoint."""

    def __init__(self, error: str, description: str, *, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


class LocalIssuer:
    def __init__(
        self,
        *,
        audience: str,
        clients: Sequence[Client] = (),
        host: str = "127.0.0.1",
        port: int = 0,
        token_lifetime_seconds: int = TOKEN_LIFETIME_SECONDS,
    ) -> None:
        self.audience = audience
        self.token_lifetime_seconds = token_lifetime_seconds
        self._clients = {client.client_id: client for client in clients}
        # Tokens the token endpoint granted, by client: how tests see that a client logged in.
        self.granted: Counter[str] = Counter()
        self._key = RSAKey.generate_key(
            KEY_BITS, parameters={"kid": uuid.uuid4().hex, "use": "sig", "alg": ALGORITHM}, private=True
        )
        self._server = ThreadingHTTPServer((host, port), self._request_handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # --- what clients and the authorizer read -----------------------------------------------

    @property
    def url(self) -> str:
        """The issuer: the ``iss`` of every token, and the base of the discovery document."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def token_endpoint(self) -> str:
        return self.url + TOKEN_PATH

    @property
    def key_id(self) -> str:
        return str(self._key.kid)

    def client(self, client_id: str) -> Client:
        return self._clients[client_id]

    def discovery_document(self) -> dict[str, Any]:
        scopes = sorted({scope for client in self._clients.values() for scope in client.scopes})
        return {
            "issuer": self.url,
            "token_endpoint": self.token_endpoint,
            "jwks_uri": self.url + JWKS_PATH,
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "response_types_supported": ["token"],
            "scopes_supported": scopes,
            "id_token_signing_alg_values_supported": [ALGORITHM],
            "subject_types_supported": ["public"],
        }

    def key_set(self) -> dict[str, Any]:
        return {"keys": [self._key.as_dict(private=False)]}

    # --- tokens --------------------------------------------------------------------------

    def mint(
        self,
        *,
        subject: str,
        scopes: Sequence[str],
        client_id: str | None = None,
        audience: str | None = None,
        issuer: str | None = None,
        lifetime_seconds: int | None = None,
        issued_at: int | None = None,
        projects: Sequence[str] | None = None,
        without: Sequence[str] = (),
        extra_claims: Mapping[str, Any] | None = None,
    ) -> str:
        """A signed access token; every claim may be overridden or left out (``without``: e.g.
        ``aud``, as Cognito's access tokens have none), which is how tests make bad ones."""
        now = int(time.time()) if issued_at is None else issued_at
        lifetime = self.token_lifetime_seconds if lifetime_seconds is None else lifetime_seconds
        claims: dict[str, Any] = {
            "iss": self.url if issuer is None else issuer,
            "sub": subject,
            "aud": self.audience if audience is None else audience,
            "client_id": client_id or subject,
            "scope": " ".join(scopes),
            "token_use": "access",
            "iat": now,
            "exp": now + lifetime,
            "jti": uuid.uuid4().hex,
        }
        if projects is not None:
            claims["projects"] = list(projects)
        claims.update(extra_claims or {})
        for name in without:
            claims.pop(name, None)
        return jwt.encode({"alg": ALGORITHM, "kid": self.key_id, "typ": "JWT"}, claims, self._key)

    def token_for(self, client_id: str, *, lifetime_seconds: int | None = None) -> str:
        """A token of a registered client, with all of its scopes."""
        client = self._clients[client_id]
        return self.mint(
            subject=client.client_id, scopes=client.scopes, projects=client.projects, lifetime_seconds=lifetime_seconds
        )

    def grant(self, form: Mapping[str, str], authorization: str | None) -> dict[str, Any]:
        """The token endpoint's answer to a client credentials request; raises OAuthError."""
        if form.get("grant_type") != "client_credentials":
            raise OAuthError("unsupported_grant_type", "only the client_credentials grant is supported")
        client_id, secret = _client_credentials(form, authorization)
        client = self._clients.get(client_id)
        if client is None or not secrets.compare_digest(client.secret.encode(), secret.encode()):
            raise OAuthError("invalid_client", "unknown client or wrong secret", status=401)
        requested = form.get("scope", "").split()
        refused = [scope for scope in requested if scope not in client.scopes]
        if refused:
            raise OAuthError("invalid_scope", f"client {client_id} may not request {' '.join(refused)}")
        scopes = requested or list(client.scopes)
        token = self.mint(subject=client.client_id, scopes=scopes, projects=client.projects)
        self.granted[client_id] += 1
        return {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": self.token_lifetime_seconds,
            "scope": " ".join(scopes),
        }

    # --- the server ------------------------------------------------------------------------

    def start(self) -> LocalIssuer:
        self._thread = threading.Thread(target=self._server.serve_forever, name="local-issuer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:  # shutdown() waits for serve_forever, which never ran otherwise
            self._server.shutdown()
            self._thread = None
        self._server.server_close()

    def _request_handler_class(self) -> type[BaseHTTPRequestHandler]:
        issuer = self

        class RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                path = self.path.partition("?")[0]
                if path in DISCOVERY_PATHS:
                    self._send(200, issuer.discovery_document())
                elif path == JWKS_PATH:
                    self._send(200, issuer.key_set())
                else:
                    self._send(404, {"error": "not_found"})

            def do_POST(self) -> None:
                if self.path.partition("?")[0] != TOKEN_PATH:
                    self._send(404, {"error": "not_found"})
                    return
                length = int(self.headers.get("content-length") or 0)
                if length > MAX_FORM_BYTES:
                    self._send(413, {"error": "invalid_request", "error_description": "request too large"})
                    self.close_connection = True
                    return
                body = self.rfile.read(length).decode("utf-8", errors="replace")
                form = {name: values[-1] for name, values in urllib.parse.parse_qs(body).items()}
                try:
                    answer = issuer.grant(form, self.headers.get("authorization"))
                except OAuthError as error:
                    extra = {"www-authenticate": 'Basic realm="token"'} if error.status == 401 else {}
                    self._send(error.status, {"error": error.error, "error_description": error.description}, extra)
                    return
                self._send(200, answer, {"cache-control": "no-store"})

            def _send(self, status: int, document: dict[str, Any], headers: Mapping[str, str] | None = None) -> None:
                payload = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                logger.debug("issuer: %s - %s", self.address_string(), format % args)

        return RequestHandler


def _client_credentials(form: Mapping[str, str], authorization: str | None) -> tuple[str, str]:
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
