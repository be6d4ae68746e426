"""The errors the domain raises when it refuses a request.

The domain layers (``flyte``, ``table``, ``aws``) know nothing of the wire: they raise these, and
the Connect layer maps each kind to its code (``runplane.connect.errors.as_connect_error``), so a
refusal reads the same whichever procedure met it.
"""

from __future__ import annotations


class DomainError(Exception):
    """A request the domain refuses; ``message`` is written for the caller."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(DomainError):
    """The request is malformed: a bad name, a missing or out-of-range field."""


class NotFound(DomainError):
    """What the request names does not exist (or is not the caller's to see)."""


class AlreadyExists(DomainError):
    """A different thing already holds what the request names."""


class FailedPrecondition(DomainError):
    """The request is well formed, but the state it acts on does not allow it now."""
