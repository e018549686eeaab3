"""The one exception type of the provider: ProviderError(kind, message).

Backends and the request/output layers raise it; the server edge (wire.py) turns its kind into a gRPC
status. Messages are for the person reading `kubectl describe pod`: they name the object and say
what to check. They never carry a secret value or a token.
"""

from __future__ import annotations

import enum


class ErrorKind(enum.Enum):
    """What went wrong, as a fixed set: also the `error_kind` metric label and the audit outcome."""

    INVALID_ARGUMENT = "InvalidArgument"  # the SecretProviderClass or request is wrong
    UNAUTHENTICATED = "Unauthenticated"  # no usable identity, or the backend rejected the login
    PERMISSION_DENIED = "PermissionDenied"  # logged in, but not allowed to read
    NOT_FOUND = "NotFound"  # the object does not exist in the backend
    UNAVAILABLE = "Unavailable"  # transient backend trouble: the driver retries
    DEADLINE_EXCEEDED = "DeadlineExceeded"
    RESOURCE_EXHAUSTED = "ResourceExhausted"  # the files are too large for the driver
    UNIMPLEMENTED = "Unimplemented"  # a backend this build does not have
    INTERNAL = "Internal"  # a bug: the message says so, the traceback goes to the log only



class ProviderError(Exception):
    """A failed mount, with its kind (which picks the gRPC status at the server edge) and a message for the user."""

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message

    def __str__(self) -> str:
        return self.message


def invalid(message: str) -> ProviderError:
    """Shorthand for the most common kind: a bad SecretProviderClass or request."""
    return ProviderError(ErrorKind.INVALID_ARGUMENT, message)
