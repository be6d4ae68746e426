"""The flyte SDK logged in to the local stack as a user would be against Flyte: over TLS with the
stack's CA, discovering the identity provider and taking a token with client credentials."""

from __future__ import annotations

from typing import Any

from local_stack.auth import USER_CLIENT
from tests.builders import DOMAIN, PROJECT


def init_flyte_as_user(stack: Any) -> Any:
    """`flyte.init` against ``stack``'s TLS endpoint as the user client; returns the flyte module."""
    import flyte

    user = stack.auth.issuer.client(USER_CLIENT)
    flyte.init(
        endpoint=stack.tls_endpoint,
        ca_cert_file_path=str(stack.ca_cert),
        auth_type="ClientSecret",
        client_id=user.client_id,
        client_credentials_secret=user.secret,
        disable_keyring=True,  # never the host's keyring: a test's token stays in the test
        org="testorg",
        project=PROJECT,
        domain=DOMAIN,
    )
    return flyte
