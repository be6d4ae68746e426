"""Connect error codes, their HTTP statuses, and the error every layer raises to reach the wire.

Status mapping from the Connect protocol's "Error Codes" table (identical in connect-go and
connect-python), so that Flyte's clients recover the code even from the status alone.
"""

from __future__ import annotations

import json
from enum import StrEnum

from runplane.errors import AlreadyExists, DomainError, FailedPrecondition, InvalidArgument, NotFound


class Code(StrEnum):
    CANCELED = "canceled"
    UNKNOWN = "unknown"
    INVALID_ARGUMENT = "invalid_argument"
    DEADLINE_EXCEEDED = "deadline_exceeded"
    NOT_FOUND = "not_found"
    ALREADY_EXISTS = "already_exists"
    PERMISSION_DENIED = "permission_denied"
    RESOURCE_EXHAUSTED = "resource_exhausted"
    FAILED_PRECONDITION = "failed_precondition"
    ABORTED = "aborted"
    OUT_OF_RANGE = "out_of_range"
    UNIMPLEMENTED = "unimplemented"
    INTERNAL = "internal"
    UNAVAILABLE = "unavailable"
    DATA_LOSS = "data_loss"
    UNAUTHENTICATED = "unauthenticated"

    @property
    def http_status(self) -> int:
        return _HTTP_STATUS[self]

    @property
    def rpc_number(self) -> int:
        """The numeric code (google.rpc.Code), used for in-band statuses of internal RPCs."""
        return _RPC_NUMBER[self]


_HTTP_STATUS = {
    Code.CANCELED: 499,
    Code.UNKNOWN: 500,
    Code.INVALID_ARGUMENT: 400,
    Code.DEADLINE_EXCEEDED: 504,
    Code.NOT_FOUND: 404,
    Code.ALREADY_EXISTS: 409,
    Code.PERMISSION_DENIED: 403,
    Code.RESOURCE_EXHAUSTED: 429,
    Code.FAILED_PRECONDITION: 400,
    Code.ABORTED: 409,
    Code.OUT_OF_RANGE: 400,
    Code.UNIMPLEMENTED: 501,
    Code.INTERNAL: 500,
    Code.UNAVAILABLE: 503,
    Code.DATA_LOSS: 500,
    Code.UNAUTHENTICATED: 401,
}

_RPC_NUMBER = {code: number for number, code in enumerate(Code.__members__.values(), start=1)}


class ConnectError(Exception):
    """An RPC failure with a Connect code; the router turns it into the protocol's error body."""

    def __init__(self, code: Code, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def to_json(self) -> bytes:
        return json.dumps({"code": self.code.value, "message": self.message}).encode()

    def __repr__(self) -> str:
        return f"ConnectError({self.code.value}, {self.message!r})"


def invalid_argument(message: str) -> ConnectError:
    return ConnectError(Code.INVALID_ARGUMENT, message)


def not_found(message: str) -> ConnectError:
    return ConnectError(Code.NOT_FOUND, message)


def already_exists(message: str) -> ConnectError:
    return ConnectError(Code.ALREADY_EXISTS, message)


def failed_precondition(message: str) -> ConnectError:
    return ConnectError(Code.FAILED_PRECONDITION, message)


# Each domain refusal's Connect code (runplane.errors).
_CODE_OF_DOMAIN_ERROR: dict[type[DomainError], Code] = {
    InvalidArgument: Code.INVALID_ARGUMENT,
    NotFound: Code.NOT_FOUND,
    AlreadyExists: Code.ALREADY_EXISTS,
    FailedPrecondition: Code.FAILED_PRECONDITION,
}


def as_connect_error(error: ConnectError | DomainError) -> ConnectError:
    """The Connect error a refusal reaches the wire as, whichever layer raised it."""
    if isinstance(error, ConnectError):
        return error
    for kind in type(error).__mro__:
        if kind in _CODE_OF_DOMAIN_ERROR:
            return ConnectError(_CODE_OF_DOMAIN_ERROR[kind], error.message)
    return ConnectError(Code.INVALID_ARGUMENT, error.message)
