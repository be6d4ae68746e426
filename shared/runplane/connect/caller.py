"""Who is calling: the JWT authorizer's claims of the request being handled, for the few handlers
that record a person (SignalEvent's ``signalled_by``). Set by the router around each unary call."""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar

_CLAIMS: ContextVar[Mapping[str, str] | None] = ContextVar("claims", default=None)


def current_claims() -> Mapping[str, str]:
    return _CLAIMS.get() or {}


def caller_subject() -> str:
    """The token's subject (a person, or a client for client credentials); empty without auth."""
    claims = current_claims()
    return str(claims.get("sub") or claims.get("client_id") or "")


def set_claims(claims: Mapping[str, str]) -> object:
    return _CLAIMS.set(claims)
