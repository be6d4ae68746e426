"""The run tokens' issuer: its discovery document and key set, which the API's RunToken authorizer reads.

Reconcile signs run tokens (``runplane.aws.run_tokens``) with an asymmetric KMS key whose private
half never leaves KMS. API Gateway's JWT authorizer checks a token against its issuer's
``<issuer>/.well-known/openid-configuration`` and the ``jwks_uri`` it names; this module answers
both for the issuer ``RUN_TOKEN_ISSUER`` (the API's ``/run-tokens`` path), with the key's public
half from ``kms:GetPublicKey`` (DER SubjectPublicKeyInfo, turned into a JWK here: no
``cryptography`` in the layer). The key set is cached for the container's life: the key's id is
fixed by the template, and a rotation is a new key (a new ``kid``) and a new deployment.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from functools import cache
from typing import Any

DISCOVERY_PATH = "/run-tokens/.well-known/openid-configuration"
JWKS_PATH = "/run-tokens/.well-known/jwks.json"
# An authorizer caches keys for up to 2 h; a shorter max-age costs nothing (the container caches too).
CACHE_CONTROL = "public, max-age=300"


@dataclass(frozen=True, kw_only=True)
class RunTokenIssuer:
    issuer: str  # RUN_TOKEN_ISSUER: <api>/run-tokens
    kms_key_id: str  # RUN_TOKEN_KMS_KEY_ID: the kid reconcile's tokens carry

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> RunTokenIssuer | None:
        env = os.environ if environ is None else environ
        issuer, key = env.get("RUN_TOKEN_ISSUER", ""), env.get("RUN_TOKEN_KMS_KEY_ID", "")
        return cls(issuer=issuer.rstrip("/"), kms_key_id=key) if issuer and key else None

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "jwks_uri": f"{self.issuer}/.well-known/jwks.json",
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["token"],
            "subject_types_supported": ["public"],
        }

    def key_set(self, *, kms: Any = None) -> dict[str, Any]:
        if kms is None:
            from runplane.aws.clients import client

            kms = client("kms")
        answer = kms.get_public_key(KeyId=self.kms_key_id)
        modulus, exponent = rsa_public_numbers(bytes(answer["PublicKey"]))
        return {
            "keys": [
                {
                    "kty": "RSA",
                    "use": "sig",
                    "alg": "RS256",
                    "kid": self.kms_key_id,
                    "n": _b64_int(modulus),
                    "e": _b64_int(exponent),
                }
            ]
        }


@cache
def cached_key_set(issuer: RunTokenIssuer) -> str:
    """The JWKS document, read from KMS once per container."""
    return json.dumps(issuer.key_set())


def answer(path: str) -> dict[str, Any] | None:
    """The HTTP answer for a run-token issuer path, None for any other path."""
    if path not in (DISCOVERY_PATH, JWKS_PATH):
        return None
    issuer = RunTokenIssuer.from_env()
    if issuer is None:
        return _json(404, json.dumps({"message": "run tokens are not configured"}))
    body = json.dumps(issuer.discovery()) if path == DISCOVERY_PATH else cached_key_set(issuer)
    return _json(200, body)


def _json(status: int, body: str) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json", "cache-control": CACHE_CONTROL},
        "body": body,
    }


def rsa_public_numbers(der: bytes) -> tuple[int, int]:
    """(n, e) of a DER SubjectPublicKeyInfo holding an RSA key (what kms:GetPublicKey returns)."""
    spki, _ = _tlv(der, 0, tag=0x30)
    _algorithm, offset = _tlv(spki, 0, tag=0x30)
    bits, _ = _tlv(spki, offset, tag=0x03)
    if not bits or bits[0] != 0:
        raise ValueError("the public key's bit string has unused bits")
    rsa_key, _ = _tlv(bits[1:], 0, tag=0x30)
    modulus, offset = _tlv(rsa_key, 0, tag=0x02)
    exponent, _ = _tlv(rsa_key, offset, tag=0x02)
    return int.from_bytes(modulus, "big"), int.from_bytes(exponent, "big")


def _tlv(data: bytes, offset: int, *, tag: int) -> tuple[bytes, int]:
    """One DER element at offset: its content and the offset after it."""
    if offset + 2 > len(data) or data[offset] != tag:
        raise ValueError(f"expected DER tag {tag:#x} at {offset}")
    length, offset = data[offset + 1], offset + 2
    if length & 0x80:
        count = length & 0x7F
        length, offset = int.from_bytes(data[offset : offset + count], "big"), offset + count
    if offset + length > len(data):
        raise ValueError("a DER element runs past its end")
    return data[offset : offset + length], offset + length


def _b64_int(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
