"""Run tokens (runplane.aws.run_tokens): minted with the issuer's key, they pass the same JWT
authorizer any data-plane token passes, and carry the run the request checks hold them to
(runplane.connect.run_scope); reconcile puts the root's token in the TaskAction's envVars, which
the run's children inherit and the run's own envs cannot replace."""

from __future__ import annotations

import base64
import json

import pytest
from flyteidl2.task import run_pb2
from flyteidl2.workflow import run_definition_pb2 as wf

from functions.reconcile.taskaction import build_taskaction
from local_stack.issuer import LocalIssuer
from runplane.aws.run_tokens import RUN_TOKEN_ENV, KmsSigner, PemSigner, RunTokenMinter
from runplane.connect.run_scope import RunScope, run_scope_of
from runplane.flyte.identifiers import ActionKey, RunKey
from runplane.ops.settings import RunTokenSettings, SettingsError
from runplane.table.records import ActionRecord
from tests.builders import task_spec
from tests.unit.test_jwt_authorizer import AUDIENCE, authorizer_for

DATA_PLANE = "runplane/data-plane"


@pytest.fixture(scope="module")
def issuer():
    local = LocalIssuer(audience=AUDIENCE)
    yield local
    local.stop()


def minter(issuer: LocalIssuer, **overrides) -> RunTokenMinter:
    fields = {
        "signer": PemSigner(key_id=issuer.key_id, pem=issuer.private_key_pem()),
        "issuer": issuer.url,
        "audience": AUDIENCE,
        "scope": DATA_PLANE,
        **overrides,
    }
    return RunTokenMinter(**fields)


def test_a_run_token_passes_the_authorizer_on_data_plane_routes_only_and_names_its_run(issuer):
    authorizer, _ = authorizer_for(issuer)
    token = minter(issuer).mint(RunKey("team-a", "development", "r1"))
    decision = authorizer.authorize({"authorization": f"Bearer {token}"}, [DATA_PLANE])
    assert decision.allowed
    claims = decision.context["jwt"]["claims"]
    assert run_scope_of(claims) == RunScope(project="team-a", domain="development", run="r1")
    assert authorizer.authorize({"authorization": token}, ["runplane/user"]).status == 403  # no user routes


def test_an_expired_or_foreign_run_token_is_refused(issuer):
    authorizer, _ = authorizer_for(issuer)
    expired = minter(issuer, lifetime_seconds=60).mint(RunKey("p", "d", "r1"), now=1_000_000)
    assert authorizer.authorize({"authorization": expired}, [DATA_PLANE]).status == 401
    other = LocalIssuer(audience=AUDIENCE)  # another key under the same kid: a forged token
    try:
        forged = minter(issuer, signer=PemSigner(key_id=issuer.key_id, pem=other.private_key_pem())).mint(
            RunKey("p", "d", "r1")
        )
    finally:
        other.stop()
    assert authorizer.authorize({"authorization": forged}, [DATA_PLANE]).status == 401


def test_kms_signs_with_rs256_in_kms_terms():
    calls = []

    class Kms:
        def sign(self, **request):
            calls.append(request)
            return {"Signature": b"sig"}

    token = RunTokenMinter(
        signer=KmsSigner(key_id="arn:aws:kms:r:1:key/k", client=Kms()), issuer="i", audience="a", scope="s"
    ).mint(RunKey("p", "d", "r"))
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header == {"alg": "RS256", "kid": "arn:aws:kms:r:1:key/k", "typ": "JWT"}
    assert calls[0]["SigningAlgorithm"] == "RSASSA_PKCS1_V1_5_SHA_256" and calls[0]["MessageType"] == "RAW"


def root(envs: dict[str, str]) -> ActionRecord:
    run_spec = run_pb2.RunSpec()
    for name, value in envs.items():
        run_spec.envs.values.add(key=name, value=value)
    spec = wf.ActionSpec(
        input_uri="s3://b/p/d/r1/inputs.pb",
        run_output_base="s3://b/p/d/r1/",
        run_spec=run_spec,
        task=wf.TaskAction(spec=task_spec()),
    )
    return ActionRecord(
        key=ActionKey("p", "d", "r1", "a0"), action_spec=spec.SerializeToString(), run_spec=run_spec.SerializeToString()
    )


def test_the_root_taskaction_carries_the_token_and_a_run_cannot_name_its_own():
    body = build_taskaction(root({RUN_TOKEN_ENV: "forged", "A": "1"}), namespace="flyte", run_token="minted")
    assert body["spec"]["envVars"] == {RUN_TOKEN_ENV: "minted", "A": "1"}
    assert RUN_TOKEN_ENV not in build_taskaction(root({}), namespace="flyte").get("spec", {}).get("envVars", {})


def test_run_token_settings_need_a_signer_an_audience_and_a_scope():
    assert RunTokenSettings.from_env({}).issuer == ""
    with pytest.raises(SettingsError):
        RunTokenSettings.from_env({"RUN_TOKEN_ISSUER": "https://i", "RUN_TOKEN_AUDIENCE": "a", "RUN_TOKEN_SCOPE": "s"})
    with pytest.raises(SettingsError):
        RunTokenSettings.from_env({"RUN_TOKEN_ISSUER": "https://i", "RUN_TOKEN_KMS_KEY_ID": "k"})
    settings = RunTokenSettings.from_env(
        {
            "RUN_TOKEN_ISSUER": "https://i",
            "RUN_TOKEN_AUDIENCE": "a",
            "RUN_TOKEN_SCOPE": "s",
            "RUN_TOKEN_KMS_KEY_ID": "k",
        }
    )
    assert settings.kms_key_id == "k" and settings.lifetime_seconds == 86400
