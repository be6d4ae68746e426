"""What a refused call raises, from whichever layer refused it: a Connect error from a function or
the wire, a domain error (runplane.errors) from the layers beneath, which the router maps."""

from __future__ import annotations

from runplane.connect.errors import Code, ConnectError, as_connect_error
from runplane.errors import DomainError

REFUSED = (ConnectError, DomainError)


def code_of(error: BaseException) -> Code:
    assert isinstance(error, REFUSED), error
    return as_connect_error(error).code


def as_refusal(error: BaseException) -> ConnectError:
    assert isinstance(error, REFUSED), error
    return as_connect_error(error)
