"""The local stack's identity provider: what Cognito (or any OpenID Connect IdP) is on AWS.

An RSA key generated at start signs RS256 access tokens. On loopback it serves what API Gateway's
JWT authorizer, the flyte SDK and the web console read from an IdP:

- ``GET /.well-known/openid-configuration`` (also at ``/.well-known/oauth-authorization-server``):
  the issuer, the authorization and token endpoints, the key set's address, the grants and the
  PKCE method (``S256``);
- ``GET /.well-known/jwks.json``: the public key (``kid``, ``RS256``);
- ``GET /oauth2/authorize``: the authorization-code grant with PKCE (RFC 7636, ``S256`` only) for a
  public client (no secret: the console, the SDK's browser login). The client and its redirect URI
  (an exact match of one registered) are checked first, and a request that fails there is answered
  with an error page, never redirected (RFC 6749 4.1.2.1); any other fault (response type, a
  missing or ``plain`` challenge, no ``state``, a scope the client may not have) is sent back to the
  redirect URI. A good request gets a page "Sign in as <person>": there is no password locally;
  the consent is the button and the consent code the banner prints. Its ``POST`` back redirects with a code (one use, a minute) bound to
  the client, the redirect URI and the challenge, or with ``access_denied``;
- ``POST /oauth2/token``: the ``client_credentials`` grant, as Cognito's token endpoint answers it
  (client authentication by HTTP Basic or in the form; ``scope`` optional, each requested scope
  must be one the client is allowed, and none requested means all of them), and the
  ``authorization_code`` grant (``code``, ``redirect_uri``, ``client_id``, ``code_verifier``, whose
  SHA-256 must be the challenge): a token for the person, with the client's audience and scopes as
  a client credentials token has them. A browser on a registered redirect URI's origin may call it
  (CORS), as the console does from the front's origin.

``mint`` issues tokens directly, also malformed ones (expired, another audience), for tests.
The OAuth vocabulary (clients, requests, errors) is ``local_stack.oauth``; the HTTP handler and the
pages are ``local_stack.issuer_http``.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from http.server import ThreadingHTTPServer
from typing import Any

from joserfc import jwt
from joserfc.jwk import RSAKey

from local_stack.issuer_http import AUTHORIZE_PATH, JWKS_PATH, TOKEN_PATH, request_handler_class
from local_stack.oauth import (
    CHALLENGE,
    CHALLENGE_METHOD,
    VERIFIER,
    AuthorizationError,
    AuthorizationRequest,
    Client,
    IssuedCode,
    OAuthError,
    PublicClient,
    client_credentials,
    origin_of,
    s256,
    with_query,
)

# The issuer's public names, whichever of its modules defines them.
__all__ = [
    "CODE_LIFETIME_SECONDS",
    "TOKEN_LIFETIME_SECONDS",
    "AuthorizationError",
    "AuthorizationRequest",
    "Client",
    "LocalIssuer",
    "OAuthError",
    "PublicClient",
]

logger = logging.getLogger(__name__)

ALGORITHM = "RS256"  # API Gateway's JWT authorizers verify RSA signatures only
KEY_BITS = 2048
# Cognito's default access-token lifetime: long enough for a session, short enough to matter.
TOKEN_LIFETIME_SECONDS = 3600
CONSENT_CODE_DIGITS = 8  # typed once per sign-in; 10^8 guesses, each a POST
# RFC 6749 4.1.2: a code lives ten minutes at most; a browser brings it back within a second.
CODE_LIFETIME_SECONDS = 60
PERSON = "developer"  # who signs in locally: the ``sub`` of the tokens the code grant gives


class LocalIssuer:
    def __init__(
        self,
        *,
        audience: str,
        clients: Sequence[Client] = (),
        public_clients: Sequence[PublicClient] = (),
        person: str = PERSON,
        host: str = "127.0.0.1",
        port: int = 0,
        token_lifetime_seconds: int = TOKEN_LIFETIME_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        key: Mapping[str, Any] | None = None,
    ) -> None:
        """``key``: a signing key saved by a previous issuer (``signing_key()``), so the tokens it
        issued stay valid; a fresh one is generated otherwise."""
        self.audience = audience
        self.person = person
        # The consent page asks for it, and only the stack's banner prints it: on a shared host,
        # another user who can reach the port cannot sign in as the person (docs/security.md).
        self.consent_code = f"{secrets.randbelow(10**CONSENT_CODE_DIGITS):0{CONSENT_CODE_DIGITS}d}"
        self.token_lifetime_seconds = token_lifetime_seconds
        self._clients = {client.client_id: client for client in clients}
        self._public_clients = {client.client_id: client for client in public_clients}
        self._codes: dict[str, IssuedCode] = {}
        self._codes_lock = threading.Lock()
        self._clock = clock
        # Tokens the token endpoint granted, by client: how tests see that a client logged in.
        self.granted: Counter[str] = Counter()
        self._key = (
            RSAKey.import_key(dict(key))
            if key is not None
            else RSAKey.generate_key(
                KEY_BITS, parameters={"kid": uuid.uuid4().hex, "use": "sig", "alg": ALGORITHM}, private=True
            )
        )
        self._server = ThreadingHTTPServer((host, port), request_handler_class(self))
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
    def authorization_endpoint(self) -> str:
        return self.url + AUTHORIZE_PATH

    @property
    def key_id(self) -> str:
        return str(self._key.kid)

    def client(self, client_id: str) -> Client:
        return self._clients[client_id]

    def register(self, client: PublicClient) -> None:
        """Adds (or replaces) a public client: its redirect URIs may be known only once the app
        that receives them is bound to its port."""
        self._public_clients[client.client_id] = client

    def cors_origins(self) -> frozenset[str]:
        """The browser origins that may call the token endpoint: those of the redirect URIs."""
        return frozenset(origin_of(uri) for client in self._public_clients.values() for uri in client.redirect_uris)

    def discovery_document(self) -> dict[str, Any]:
        clients: list[Client | PublicClient] = [*self._clients.values(), *self._public_clients.values()]
        scopes = sorted({scope for client in clients for scope in client.scopes})
        return {
            "issuer": self.url,
            "authorization_endpoint": self.authorization_endpoint,
            "token_endpoint": self.token_endpoint,
            "jwks_uri": self.url + JWKS_PATH,
            "grant_types_supported": ["authorization_code", "client_credentials"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": [CHALLENGE_METHOD],
            "scopes_supported": scopes,
            "id_token_signing_alg_values_supported": [ALGORITHM],
            "subject_types_supported": ["public"],
        }

    def signing_key(self) -> dict[str, Any]:
        """The private key as a JWK, for the stack's state folder (``key=`` of the next issuer)."""
        return dict(self._key.as_dict(private=True))

    def private_key_pem(self) -> bytes:
        """The signing key, for the one other signer of this issuer's tokens: reconcile's run
        tokens (runplane.aws.run_tokens.PemSigner), as a KMS key is on AWS."""
        return bytes(self._key.as_pem(private=True))

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

    # --- the authorization-code grant (PKCE) ------------------------------------------------------

    def authorization_request(self, params: Mapping[str, str]) -> AuthorizationRequest:
        """The checked parameters of ``GET /oauth2/authorize`` (and of the consent form posted
        back); raises AuthorizationError."""
        client_id = params.get("client_id", "")
        client = self._public_clients.get(client_id)
        if client is None:
            raise AuthorizationError("invalid_request", f"unknown client {client_id!r}")
        redirect_uri = params.get("redirect_uri", "")
        if redirect_uri not in client.redirect_uris:
            raise AuthorizationError(
                "invalid_request", f"redirect_uri {redirect_uri!r} is not registered for {client_id}"
            )
        state = params.get("state", "")

        def refused(error: str, description: str) -> AuthorizationError:
            location = with_query(redirect_uri, error=error, error_description=description, state=state)
            return AuthorizationError(error, description, location=location)

        if params.get("response_type") != "code":
            raise refused("unsupported_response_type", "only response_type=code is supported")
        if not state:
            raise refused("invalid_request", "state is required")
        challenge = params.get("code_challenge", "")
        if not CHALLENGE.fullmatch(challenge):
            raise refused("invalid_request", "code_challenge is required: a SHA-256 digest, base64url without padding")
        if params.get("code_challenge_method") != CHALLENGE_METHOD:
            raise refused("invalid_request", f"code_challenge_method must be {CHALLENGE_METHOD}")
        requested = params.get("scope", "").split()
        disallowed = [scope for scope in requested if scope not in client.scopes]
        if disallowed:
            raise refused("invalid_scope", f"client {client_id} may not request {' '.join(disallowed)}")
        return AuthorizationRequest(
            client_id=client_id,
            redirect_uri=redirect_uri,
            state=state,
            code_challenge=challenge,
            scopes=tuple(requested) or client.scopes,
        )

    def consents(self, code: str) -> bool:
        """Whether ``code`` is the consent code (compared in constant time)."""
        return hmac.compare_digest(code.strip().encode(), self.consent_code.encode())

    def approve(self, request: AuthorizationRequest) -> str:
        """The person consented: where the browser goes next, with a one-time code bound to the request."""
        code = secrets.token_urlsafe(32)
        now = self._clock()
        with self._codes_lock:
            self._codes = {key: issued for key, issued in self._codes.items() if issued.expires_at > now}
            self._codes[code] = IssuedCode(request=request, expires_at=now + CODE_LIFETIME_SECONDS)
        return with_query(request.redirect_uri, code=code, state=request.state)

    def deny(self, request: AuthorizationRequest) -> str:
        """The person declined: where the browser goes next (RFC 6749 4.1.2.1, ``access_denied``)."""
        return with_query(
            request.redirect_uri,
            error="access_denied",
            error_description="the sign-in was declined",
            state=request.state,
        )

    def _redeem(self, form: Mapping[str, str]) -> dict[str, Any]:
        """The token endpoint's answer to an authorization_code request of a public client."""
        client = self._public_clients.get(form.get("client_id", ""))
        if client is None:
            raise OAuthError("invalid_client", "unknown public client", status=401)
        with self._codes_lock:  # taken on the first try, whatever its outcome: a code is used once
            issued = self._codes.pop(form.get("code", ""), None)
        if issued is None or issued.expires_at <= self._clock():
            raise OAuthError("invalid_grant", "the code is unknown, used or expired")
        request = issued.request
        if request.client_id != client.client_id:
            raise OAuthError("invalid_grant", "the code was issued to another client")
        if form.get("redirect_uri") != request.redirect_uri:
            raise OAuthError("invalid_grant", "redirect_uri is not the authorization request's")
        verifier = form.get("code_verifier", "")
        if not VERIFIER.fullmatch(verifier):
            raise OAuthError("invalid_request", "code_verifier is required: 43 to 128 unreserved characters")
        if not secrets.compare_digest(s256(verifier), request.code_challenge):
            raise OAuthError("invalid_grant", "code_verifier does not match the code_challenge")
        token = self.mint(subject=self.person, scopes=request.scopes, client_id=client.client_id)
        self.granted[client.client_id] += 1
        return {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": self.token_lifetime_seconds,
            "scope": " ".join(request.scopes),
        }

    # --- the token endpoint ------------------------------------------------------------------

    def grant(self, form: Mapping[str, str], authorization: str | None) -> dict[str, Any]:
        """The token endpoint's answer to a client credentials or authorization code request;
        raises OAuthError."""
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            return self._redeem(form)
        if grant_type != "client_credentials":
            raise OAuthError("unsupported_grant_type", "the grants are authorization_code and client_credentials")
        client_id, secret = client_credentials(form, authorization)
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
