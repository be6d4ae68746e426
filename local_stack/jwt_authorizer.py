"""API Gateway's HTTP API JWT authorizer, for the local front: the checks, answers and claims it hands on.

What API Gateway does for a route with a JWT authorizer (``docs: http-api-jwt-authorizer``):

1. take the token from the identity source (``Authorization``), with or without ``Bearer``;
2. decode it; only RSA signatures (RS256/384/512), by the key of the header's ``kid`` from the
   issuer's ``jwks_uri`` (read from ``<issuer>/.well-known/openid-configuration``, cached 2 h);
3. ``iss`` is the configured issuer; ``aud`` (or, only when there is no ``aud``, ``client_id``)
   is one of the configured audiences; ``exp`` is after now; ``nbf`` and ``iat``, when present,
   are before now;
4. for a route with ``AuthorizationScopes``, the token's ``scope`` (or ``scp``) holds at least one.

A failure of 1-3 is 401 ``{"message":"Unauthorized"}`` with a ``www-authenticate`` header saying
why; of 4, 403 ``{"message":"Forbidden"}``. The handler then gets the claims in
``requestContext.authorizer.jwt`` as payload 2.0 carries them: every value a string (numbers and
booleans as text, arrays as ``[a b]``, objects as JSON, null claims left out), and ``scopes``
the token's scopes on a route that requires scopes, else null.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from local_stack.template import JwtAuthorizerConfig

if TYPE_CHECKING:
    from joserfc.jwk import KeySetSerialization

RSA_ALGORITHMS = ("RS256", "RS384", "RS512")  # "Currently, only RSA-based algorithms are supported."
KEY_CACHE_SECONDS = 2 * 3600  # "API Gateway can cache the public key for two hours."
# A token whose kid is unknown makes the authorizer refetch the key set, at most this often.
KEY_REFRESH_MIN_SECONDS = 10.0
FETCH_TIMEOUT_SECONDS = 5.0
DISCOVERY_PATH = "/.well-known/openid-configuration"

FetchJson = Callable[[str], dict[str, Any]]


@dataclass(frozen=True)
class Decision:
    """The authorizer's answer: ``context`` for ``requestContext.authorizer`` when allowed, else
    the response API Gateway sends instead of invoking the route."""

    status: int
    context: dict[str, Any] | None = None
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def allowed(self) -> bool:
        return self.context is not None


class _Refused(Exception):
    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


class JwtAuthorizer:
    def __init__(
        self,
        config: JwtAuthorizerConfig,
        *,
        fetch_json: FetchJson | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self._fetch_json = fetch_json or _fetch_json
        self._clock = clock
        self._keys: KeySet | None = None
        self._keys_fetched_at = float("-inf")
        self._lock = threading.Lock()

    def authorize(self, headers: Mapping[str, str], scopes: Sequence[str]) -> Decision:
        """``headers`` lower-cased; ``scopes`` the route's AuthorizationScopes."""
        try:
            claims = self._validated_claims(headers.get(self.config.identity_header, ""))
        except _Refused as refused:
            return _unauthorized(refused.description)
        token_scopes = _token_scopes(claims)
        if scopes and not set(scopes) & set(token_scopes):
            return _forbidden(scopes)
        return Decision(
            status=200,
            context={"jwt": {"claims": payload_v2_claims(claims), "scopes": token_scopes if scopes else None}},
        )

    # --- validation -------------------------------------------------------------------------

    def _validated_claims(self, identity: str) -> dict[str, Any]:
        token = identity.strip()
        if token[:7].lower() == "bearer ":
            token = token[7:].strip()
        if not token:
            raise _Refused("the authorization header is missing")
        header = _header_of(token)
        algorithm = header.get("alg")
        if algorithm not in RSA_ALGORITHMS:
            raise _Refused(f"signing algorithm {algorithm!r} is not supported")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise _Refused("the token has no kid")
        key = self._key(kid)
        if key is None:
            raise _Refused("the token's kid matches no key of the issuer")
        try:
            claims = dict(jwt.decode(token, key, algorithms=[algorithm]).claims)
        except (JoseError, ValueError, TypeError):
            raise _Refused("the token's signature is invalid") from None
        self._check_claims(claims)
        return claims

    def _check_claims(self, claims: Mapping[str, Any]) -> None:
        now = self._clock()
        if claims.get("iss") != self.config.issuer:
            raise _Refused("the token does not have a valid issuer")
        audience = claims.get("aud")
        if audience is not None:
            audiences = audience if isinstance(audience, list) else [audience]
            if not set(map(str, audiences)) & set(self.config.audience):
                raise _Refused("the token does not have a valid audience")
        elif str(claims.get("client_id", "")) not in self.config.audience:
            raise _Refused("the token does not have a valid audience")
        expires = _number(claims.get("exp"))
        if expires is None or expires <= now:
            raise _Refused("the token has expired")
        for name in ("nbf", "iat"):
            moment = claims.get(name)
            if moment is not None and ((value := _number(moment)) is None or value > now):
                raise _Refused(f"the token's {name} is in the future")

    def _key(self, kid: str) -> Any:
        with self._lock:
            age = self._clock() - self._keys_fetched_at
            if self._keys is None or age > KEY_CACHE_SECONDS:
                self._refresh_keys()
            elif _key_of(self._keys, kid) is None and age > KEY_REFRESH_MIN_SECONDS:
                self._refresh_keys()  # a rotated key set
            return _key_of(self._keys, kid)

    def _refresh_keys(self) -> None:
        try:
            discovery = self._fetch_json(self.config.issuer.rstrip("/") + DISCOVERY_PATH)
            key_set = self._fetch_json(str(discovery["jwks_uri"]))
            self._keys = KeySet.import_key_set(cast("KeySetSerialization", key_set))
            self._keys_fetched_at = self._clock()
        except (OSError, ValueError, KeyError, JoseError):
            raise _Refused("the issuer's keys cannot be read") from None


def _key_of(keys: KeySet | None, kid: str) -> Any:
    if keys is None:
        return None
    try:
        return keys.get_by_kid(kid)
    except (JoseError, ValueError):
        return None


def payload_v2_claims(claims: Mapping[str, Any]) -> dict[str, str]:
    """Claims as payload 2.0 hands them to the integration: strings only, null claims left out."""
    return {name: _claim_text(value) for name, value in claims.items() if value is not None}


def _claim_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    if isinstance(value, list):
        return "[" + " ".join(_claim_text(item) for item in value if item is not None) + "]"
    return json.dumps(value, separators=(",", ":"))


def _token_scopes(claims: Mapping[str, Any]) -> list[str]:
    scopes = claims.get("scope", claims.get("scp"))
    if isinstance(scopes, str):
        return scopes.split()
    if isinstance(scopes, list):
        return [str(scope) for scope in scopes]
    return []


def _header_of(token: str) -> dict[str, Any]:
    parts = token.split(".")
    if len(parts) != 3 or not all(parts):
        raise _Refused("the token is not a signed JWT")
    try:
        header = json.loads(base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise _Refused("the token's header cannot be decoded") from None
    if not isinstance(header, dict):
        raise _Refused("the token's header cannot be decoded")
    return header


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _unauthorized(description: str) -> Decision:
    return Decision(
        status=401,
        body=b'{"message":"Unauthorized"}',
        headers={
            "content-type": "application/json",
            "www-authenticate": f'Bearer scope="" error="invalid_token" error_description="{description}"',
        },
    )


def _forbidden(scopes: Sequence[str]) -> Decision:
    return Decision(
        status=403,
        body=b'{"message":"Forbidden"}',
        headers={
            "content-type": "application/json",
            "www-authenticate": (
                f'Bearer scope="{" ".join(scopes)}" error="insufficient_scope" '
                'error_description="the token does not have the scopes this route requires"'
            ),
        },
    )


def _fetch_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_SECONDS) as response:
        document = json.loads(response.read())
    if not isinstance(document, dict):
        raise ValueError(f"{url} is not a JSON object")
    return document
