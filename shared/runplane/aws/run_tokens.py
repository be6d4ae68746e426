"""Run tokens: the only data-plane credential a task pod holds, minted by the control plane.

A run token is an RS256 JWT the API's JWT authorizer accepts like any data-plane token (``iss``,
``aud``, ``exp``, the data-plane ``scope``), with the claim ``flyte_run = <project>/<domain>/<run>``
that ``runplane.connect.run_scope`` holds every request against: the token acts only on its own
run's actions and data. Reconcile mints one when it materialises a run's root action and puts it
in the TaskAction's ``envVars`` (``RUN_TOKEN_ENV``), which Flyte's executor hands to the pod and
every child TaskAction of the run inherits; the pod's SDK sends it (its config's ExternalCommand
prints the variable). The key never leaves the signer:

- ``KmsSigner``: an asymmetric KMS key (RSA_2048, SIGN_VERIFY) on AWS; only reconcile's role may
  ``kms:Sign`` with it, and its public key is what the authorizer's issuer publishes;
- ``PemSigner``: a PEM private key in a file only the stack's user can read (the local stack's
  issuer key), for the local stack.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from runplane.flyte.identifiers import RunKey

RUN_TOKEN_ENV = "FLYTE_RUN_TOKEN"  # the pod's variable; reconcile's value wins over a run's own envs
RUN_CLAIM = "flyte_run"  # runplane.connect.run_scope reads it
ALGORITHM = "RS256"
KMS_ALGORITHM = "RSASSA_PKCS1_V1_5_SHA_256"  # what RS256 is in KMS's terms


class Signer(Protocol):
    @property
    def key_id(self) -> str: ...

    def sign(self, message: bytes) -> bytes: ...


class KmsSigner:
    """Signs with an asymmetric KMS key: one ``kms:Sign`` call per run."""

    def __init__(self, *, key_id: str, client: Any = None) -> None:
        self._key_id = key_id
        self._client = client

    @property
    def key_id(self) -> str:
        return self._key_id

    def sign(self, message: bytes) -> bytes:
        if self._client is None:
            from runplane.aws.clients import client

            self._client = client("kms")
        answer = self._client.sign(
            KeyId=self._key_id, Message=message, MessageType="RAW", SigningAlgorithm=KMS_ALGORITHM
        )
        return bytes(answer["Signature"])


class PemSigner:
    """Signs with an RSA private key read from a PEM file (the local stack's issuer key)."""

    def __init__(self, *, key_id: str, pem: bytes) -> None:
        from cryptography.hazmat.primitives import serialization  # local stack only: not in the layer
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("a run token key must be an RSA private key (RS256)")
        self._key_id = key_id
        self._key = key

    @property
    def key_id(self) -> str:
        return self._key_id

    def sign(self, message: bytes) -> bytes:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        return bytes(self._key.sign(message, padding.PKCS1v15(), hashes.SHA256()))


@dataclass(frozen=True, kw_only=True)
class RunTokenMinter:
    signer: Signer
    issuer: str  # the authorizer's issuer
    audience: str
    scope: str  # the data-plane scope, and nothing else
    # A run's pods use the token for as long as the run runs; the tree is deleted when it ends.
    lifetime_seconds: int = 24 * 3600

    def mint(self, run: RunKey, *, now: float | None = None) -> str:
        issued = int(time.time() if now is None else now)
        claims = {
            "iss": self.issuer,
            "sub": f"run:{run}",
            "aud": self.audience,
            "client_id": "run-token",
            "scope": self.scope,
            "token_use": "access",
            RUN_CLAIM: str(run),
            "iat": issued,
            "exp": issued + self.lifetime_seconds,
            "jti": uuid.uuid4().hex,
        }
        header = {"alg": ALGORITHM, "kid": self.signer.key_id, "typ": "JWT"}
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}".encode()
        return f"{signing_input.decode()}.{_b64(self.signer.sign(signing_input))}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
