"""Opaque page tokens: where the next page starts, bound to the query that produced it.

A token is ``base64url(json)`` + ``.`` + an HMAC of it, so a token that was altered, or that
belongs to another query (other filters, sort or scope), is ``invalid_argument`` instead of a
silently wrong page.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any

from runplane.connect.errors import invalid_argument

DEFAULT_LIMIT = 50  # Flyte's defaults
MAX_LIMIT = 200


def page_limit(limit: int) -> int:
    if limit > MAX_LIMIT:
        raise invalid_argument(f"request.limit {limit} is over the maximum of {MAX_LIMIT}")
    return limit or DEFAULT_LIMIT


class PageTokens:
    def __init__(self, *, secret: bytes) -> None:
        self._secret = secret

    def issue(self, *, query: str, position: dict[str, Any]) -> str:
        payload = base64.urlsafe_b64encode(
            json.dumps({"q": _digest(query), "p": position}, separators=(",", ":")).encode()
        )
        return f"{payload.decode()}.{self._sign(payload)}"

    def read(self, token: str, *, query: str) -> dict[str, Any] | None:
        """The position a token names, None for the first page; a bad token is invalid_argument."""
        if not token:
            return None
        payload, _, signature = token.encode().partition(b".")
        if not payload or not hmac.compare_digest(self._sign(payload).encode(), signature):
            raise invalid_argument("request.token is not a token this service issued")
        try:
            content = json.loads(base64.urlsafe_b64decode(payload))
        except (binascii.Error, ValueError):
            raise invalid_argument("request.token is malformed") from None
        if content.get("q") != _digest(query):
            raise invalid_argument("request.token belongs to a different query (filters, sort or scope changed)")
        position: dict[str, Any] = content["p"]  # signed: the position ``issue`` was given
        return position

    def _sign(self, payload: bytes) -> str:
        return hmac.new(self._secret, payload, hashlib.sha256).hexdigest()[:32]


def _digest(query: str) -> str:
    return hashlib.sha256(query.encode()).hexdigest()[:16]
