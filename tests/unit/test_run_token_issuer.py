"""The run tokens' issuer on AWS (functions.auth_metadata.run_token_keys): the discovery document
API Gateway's RunToken authorizer reads names the issuer reconcile's tokens carry, and the key set
holds the KMS key's public half under the kid the tokens name, so a KMS-signed token verifies."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from functions.auth_metadata import run_token_keys
from functions.auth_metadata.run_token_keys import RunTokenIssuer, rsa_public_numbers
from runplane.aws.run_tokens import KmsSigner, RunTokenMinter
from runplane.flyte.identifiers import RunKey

ISSUER = "https://api.example/run-tokens"
KEY_ID = "0f1e2d3c-aaaa-bbbb-cccc-1234567890ab"


class Kms:
    """KMS's two calls, with a real RSA key: Sign (PKCS#1 v1.5, SHA-256) and GetPublicKey (DER SPKI)."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def sign(self, *, KeyId, Message, MessageType, SigningAlgorithm):  # boto3's names
        assert (KeyId, MessageType, SigningAlgorithm) == (KEY_ID, "RAW", "RSASSA_PKCS1_V1_5_SHA_256")
        return {"Signature": self.key.sign(Message, padding.PKCS1v15(), hashes.SHA256())}

    def get_public_key(self, *, KeyId):
        der = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return {"KeyId": KeyId, "PublicKey": der}


def _int(text: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), "big")


def test_the_key_set_verifies_a_kms_signed_run_token():
    kms = Kms()
    issuer = RunTokenIssuer(issuer=ISSUER, kms_key_id=KEY_ID)
    token = RunTokenMinter(
        signer=KmsSigner(key_id=KEY_ID, client=kms), issuer=ISSUER, audience="a", scope="runplane/data-plane"
    ).mint(RunKey("p", "d", "r1"))
    (jwk,) = issuer.key_set(kms=kms)["keys"]
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert jwk["kid"] == header["kid"] == KEY_ID and jwk["alg"] == header["alg"] == "RS256"
    public = rsa.RSAPublicNumbers(e=_int(jwk["e"]), n=_int(jwk["n"])).public_key()
    signing_input, _, signature = token.rpartition(".")
    public.verify(_int_bytes(signature), signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims["iss"] == issuer.discovery()["issuer"] == ISSUER


def _int_bytes(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_discovery_names_the_key_set_under_the_issuer():
    document = RunTokenIssuer.from_env({"RUN_TOKEN_ISSUER": ISSUER + "/", "RUN_TOKEN_KMS_KEY_ID": KEY_ID}).discovery()
    assert document["issuer"] == ISSUER
    assert document["jwks_uri"] == ISSUER + "/.well-known/jwks.json"
    assert run_token_keys.JWKS_PATH.endswith("/.well-known/jwks.json")
    assert run_token_keys.DISCOVERY_PATH.startswith("/run-tokens/")


def test_the_routes_answer_only_their_paths_and_404_when_unconfigured(monkeypatch):
    monkeypatch.delenv("RUN_TOKEN_ISSUER", raising=False)
    assert run_token_keys.answer("/flyteidl2.auth.AuthMetadataService/GetOAuth2Metadata") is None
    assert run_token_keys.answer(run_token_keys.DISCOVERY_PATH)["statusCode"] == 404
    monkeypatch.setenv("RUN_TOKEN_ISSUER", ISSUER)
    monkeypatch.setenv("RUN_TOKEN_KMS_KEY_ID", KEY_ID)
    answer = run_token_keys.answer(run_token_keys.DISCOVERY_PATH)
    assert answer["statusCode"] == 200 and json.loads(answer["body"])["issuer"] == ISSUER


def test_a_malformed_public_key_is_refused():
    with pytest.raises(ValueError):
        rsa_public_numbers(b"\x30\x05\x02\x01\x01")


def test_the_streamed_watches_trust_the_issuer_the_http_api_does(monkeypatch):
    from functions.read_runs.stream import issuer_of

    monkeypatch.setenv("AUTH_ISSUER", "https://idp.example")
    monkeypatch.delenv("RUN_TOKEN_ISSUER", raising=False)
    assert issuer_of("/flyteidl2.actions.ActionsService/WatchForUpdates") == "https://idp.example"
    monkeypatch.setenv("RUN_TOKEN_ISSUER", ISSUER)
    assert issuer_of("/flyteidl2.actions.ActionsService/WatchForUpdates") == ISSUER
    assert issuer_of("/flyteidl2.workflow.StateService/Watch") == ISSUER
    assert issuer_of("/flyteidl2.workflow.RunService/WatchRuns") == "https://idp.example"  # people's
