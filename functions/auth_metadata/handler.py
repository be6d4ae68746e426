"""Lambda entry point of auth_metadata: API Gateway HTTP API -> AuthMetadataService.

Its routes have no authorizer (``Auth: {Authorizer: NONE}`` in template.yaml): a client asks
them where to get a token before it has one, and API Gateway's RunToken authorizer reads the run
tokens' issuer documents (``run_token_keys``) from them. Thin: the behaviour is in ``service``.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

from flyteidl2.auth import auth_service_pb2 as auth

from functions.auth_metadata.service import AuthMetadata, AuthMetadataSettings
from runplane.connect.apigateway import handle_http_event
from runplane.connect.router import ConnectRouter, Procedures
from runplane.ops.logs import function_logger
from runplane.ops.metrics import function_metrics

logger = function_logger("auth_metadata")
metrics = function_metrics("auth_metadata")  # EMF lines, written as each invocation ends

AUTH_METADATA = "/flyteidl2.auth.AuthMetadataService"

router = ConnectRouter()


@cache
def auth_metadata() -> AuthMetadata:
    """Built on the first request of a container; its cache of the metadata lives as long."""
    return AuthMetadata(settings=AuthMetadataSettings.from_env(os.environ))


PROCEDURES: Procedures[AuthMetadata] = {
    f"{AUTH_METADATA}/GetOAuth2Metadata": (auth.GetOAuth2MetadataRequest, AuthMetadata.get_oauth2_metadata),
    f"{AUTH_METADATA}/GetPublicClientConfig": (
        auth.GetPublicClientConfigRequest,
        AuthMetadata.get_public_client_config,
    ),
}
router.mount(PROCEDURES, auth_metadata)


@metrics.flush_after
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from functions.auth_metadata import run_token_keys

    issuer_answer = run_token_keys.answer(event.get("rawPath") or "")
    return issuer_answer if issuer_answer is not None else handle_http_event(router, event)
