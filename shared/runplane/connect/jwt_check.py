"""The JWT check of the streaming route, done by the function itself: a Lambda function URL has
no JWT authorizer, so the function checks what the HTTP API's authorizer checks on every other
route (``local_stack.jwt_authorizer`` describes API Gateway's rules), with no dependency beyond
the standard library (an RSA signature check is one modular exponentiation):

1. the token from ``Authorization``, with or without ``Bearer``;
2. an RSA signature (RS256/384/512) by the key of the header's ``kid`` in the issuer's JWKS (from
   ``<issuer>/.well-known/openid-configuration``, cached ``KEY_CACHE_SECONDS``; an unknown kid
   refetches it, at most every ``KEY_REFRESH_MIN_SECONDS``);
3. ``iss`` the issuer; ``aud`` (or, without one, ``client_id``) one of the audiences; ``exp``
   after now, ``nbf`` and ``iat`` before it;
4. at least one of the route's scopes in ``scope``/``scp``.

``TokenCheck.claims`` returns the claims as payload 2.0 carries them (every value a string), for
the router's project limit (``access``), or raises ``Refused`` (401 for 1-3, 403 for 4).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from typing import Any

KEY_CACHE_SECONDS = 2 * 3600  # as API Gateway's authorizer caches the issuer's public keys
KEY_REFRESH_MIN_SECONDS = 10.0  # an unknown kid refetches the keys, at most this often
FETCH_TIMEOUT_SECONDS = 5.0
DISCOVERY_PATH = "/.well-known/openid-configuration"
# DER prefixes of PKCS#1 v1.5's DigestInfo, by algorithm (RFC 8017, section 9.2, note 1).
_DIGESTS: dict[str, tuple[Callable[[bytes], Any], bytes]] = {
    "RS256": (hashlib.sha256, bytes.fromhex("3031300d060960864801650304020105000420")),
    "RS384": (hashlib.sha384, bytes.fromhex("3041300d060960864801650304020205000430")),
    "RS512": (hashlib.sha512, bytes.fromhex("3051300d060960864801650304020305000440")),
}

FetchJson = Callable[[str], dict[str, Any]]


class Refused(Exception):
    """A token refused: ``status`` 401 (missing, malformed, unsigned, expired, wrong issuer or
    audience) or 403 (no required scope)."""

    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description


class TokenCheck:
    def __init__(
        self,
        *,
        issuer: str,
        audiences: Sequence[str],
        fetch_json: FetchJson | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.issuer = issuer
        self.audiences = tuple(audiences)
        self._fetch = fetch_json or _fetch_json
        self._clock = clock
        self._keys: dict[str, tuple[int, int]] = {}
        self._fetched_at: float | None = None
        self._lock = threading.Lock()

    def claims(self, headers: Mapping[str, str], scopes: Sequence[str]) -> dict[str, str]:
        token = headers.get("authorization", "").strip()
        if token[:7].lower() == "bearer ":
            token = token[7:].strip()
        if not token:
            raise Refused(401, "no token")
        claims = self._verified(token)
        self._check_claims(claims)
        granted = _token_scopes(claims)
        if scopes and not set(scopes) & set(granted):
            raise Refused(403, "the token has none of the required scopes")
        return {name: _claim_text(value) for name, value in claims.items() if value is not None}

    def _verified(self, token: str) -> dict[str, Any]:
        try:
            header_part, payload_part, signature_part = token.split(".")
            header = json.loads(_unbase64(header_part))
            claims = json.loads(_unbase64(payload_part))
            signature = _unbase64(signature_part)
        except (ValueError, UnicodeDecodeError):
            raise Refused(401, "malformed token") from None
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise Refused(401, "malformed token")
        algorithm = header.get("alg")
        if algorithm not in _DIGESTS:
            raise Refused(401, f"unsupported algorithm {algorithm!r}")
        key = self._key(str(header.get("kid", "")))
        if not _rsa_verifies(key, f"{header_part}.{payload_part}".encode(), signature, algorithm):
            raise Refused(401, "bad signature")
        return claims

    def _check_claims(self, claims: Mapping[str, Any]) -> None:
        now = self._clock()
        if claims.get("iss") != self.issuer:
            raise Refused(401, "wrong issuer")
        audience = claims.get("aud", claims.get("client_id"))
        audiences = audience if isinstance(audience, list) else [audience]
        if not set(map(str, audiences)) & set(self.audiences):
            raise Refused(401, "wrong audience")
        expires = claims.get("exp")
        if not isinstance(expires, int | float) or expires <= now:
            raise Refused(401, "expired")
        for name in ("nbf", "iat"):
            value = claims.get(name)
            if isinstance(value, int | float) and value > now:
                raise Refused(401, f"{name} is in the future")

    def _key(self, kid: str) -> tuple[int, int]:
        with self._lock:
            stale = self._fetched_at is None or self._clock() - self._fetched_at > KEY_CACHE_SECONDS
            may_refresh = self._fetched_at is None or self._clock() - self._fetched_at > KEY_REFRESH_MIN_SECONDS
            if stale or (kid not in self._keys and may_refresh):
                self._refresh()
            key = self._keys.get(kid)
        if key is None:
            raise Refused(401, "unknown signing key")
        return key

    def _refresh(self) -> None:
        discovery = self._fetch(self.issuer.rstrip("/") + DISCOVERY_PATH)
        keys = self._fetch(str(discovery["jwks_uri"])).get("keys", [])
        self._keys = {
            str(k.get("kid", "")): (int.from_bytes(_unbase64(k["n"]), "big"), int.from_bytes(_unbase64(k["e"]), "big"))
            for k in keys
            if k.get("kty") == "RSA" and "n" in k and "e" in k
        }
        self._fetched_at = self._clock()


def _rsa_verifies(key: tuple[int, int], message: bytes, signature: bytes, algorithm: str) -> bool:
    """RSASSA-PKCS1-v1_5 verification (RFC 8017, section 8.2.2)."""
    modulus, exponent = key
    size = (modulus.bit_length() + 7) // 8
    if len(signature) != size:
        return False
    digest, prefix = _DIGESTS[algorithm]
    encoded = pow(int.from_bytes(signature, "big"), exponent, modulus).to_bytes(size, "big")
    info: bytes = prefix + digest(message).digest()
    expected = b"\x00\x01" + b"\xff" * (size - len(info) - 3) + b"\x00" + info
    return bool(encoded == expected)


def _unbase64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _token_scopes(claims: Mapping[str, Any]) -> list[str]:
    scopes = claims.get("scope", claims.get("scp", ""))
    return list(map(str, scopes)) if isinstance(scopes, list) else str(scopes).split()


def _claim_text(value: Any) -> str:
    """A claim as payload 2.0 carries it: text as is, arrays as ``[a b]``, objects as JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + " ".join(map(_claim_text, value)) + "]"
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _fetch_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_SECONDS) as response:  # the issuer's https URL
        document: object = json.loads(response.read())
    if not isinstance(document, dict):
        raise Refused(401, f"{url} is not a JSON object")
    return document
