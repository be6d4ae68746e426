"""Lambda entry point of console: API Gateway HTTP API (GET ``/``, ``/v2``, ``/v2/{proxy+}``,
``/console/{proxy+}``) -> the console's page and assets (``site``).

Its routes have no authorizer: the page and its scripts are public, and the API calls they make
carry the user's token. Its one setting is where the pages sign people in: the origin of the
identity provider's token endpoint (``AUTH_TOKEN_ORIGIN``, else ``AUTH_ISSUER``'s), the only origin
besides their own their Content-Security-Policy lets them call. Thin, and light on purpose:
standard library only, so a cold start costs next to nothing (no protobuf, no AWS SDK, no logging
library, not even typing).
"""

from __future__ import annotations

import binascii
import os
from functools import cache

from functions.console.site import ASSET_PREFIX, ConsoleSite, Response, identity_provider_origin, not_found


@cache
def site(identity_provider: str = "") -> ConsoleSite:
    """The files, read and hashed on the first request of a container (per identity provider:
    one on Lambda, whose environment never changes)."""
    return ConsoleSite(identity_provider=identity_provider)


def handler(event: dict[str, object], context: object) -> dict[str, object]:
    path = str(event.get("rawPath") or "/")
    raw_headers = event.get("headers")
    headers = {str(k).lower(): str(v) for k, v in raw_headers.items()} if isinstance(raw_headers, dict) else {}
    console = site(
        identity_provider_origin(
            token_origin=os.environ.get("AUTH_TOKEN_ORIGIN", ""), issuer=os.environ.get("AUTH_ISSUER", "")
        )
    )
    if path.startswith(ASSET_PREFIX):
        response = console.asset(path=path.removeprefix(ASSET_PREFIX), headers=headers)
    elif path in ("/", "/v2") or path.startswith("/v2/"):  # CALLBACK_PATH among them
        response = console.page(headers=headers)
    else:
        response = not_found(path)
    return _event_response(response)


def _event_response(response: Response) -> dict[str, object]:
    return {
        "statusCode": response.status,
        "headers": response.headers,
        "isBase64Encoded": True,
        "body": binascii.b2a_base64(response.body, newline=False).decode(),
    }
