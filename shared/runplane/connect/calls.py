"""What a handler that asks for it gets besides its request: the caller, and headers to answer with.

Most procedures are all-or-nothing: the router checks the token's ``projects`` claim against the
whole decoded request before the handler runs (``runplane.connect.access``). A procedure whose
request carries independent items of several projects (EventsProxyService/Record: Flyte's executor
batches up to 400 events of unrelated actions, ``executor/pkg/controller/event_batcher.go``) is
registered ``with_call=True`` instead: the router skips that whole-request check and hands the
handler a ``Call``, so it can check each item itself and say in a response header which it refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass
class Call:
    # the authorizer's claims of the caller's token (empty without a token)
    claims: Mapping[str, str] = field(default_factory=dict)
    # added to the response the handler's message is encoded into (a unary success only)
    response_headers: dict[str, str] = field(default_factory=dict)
