"""The one exception type of the provider: ProviderError(kind, message).

Backends and the request/output layers raise it; the server edge (wire.py) turns its kind into a gRPC
status. Messages are for the person reading `kubectl describe pod`: they name the object and say
what to check. They never carry a secret value or a token.
"""

from __future__ import annotations

import enum

from provider.redaction import redact_text

# How much of a value a message repeats: enough to recognise it, never the whole of a hostile one.
ECHO_CHARS = 200
# Redacted before it is cut, over this much more than is shown: a credential that starts in the part shown
# (a JWT is 1-2 KiB, a known secret at most 16 KiB) is removed whole instead of cut into an unrecognisable piece.
ECHO_REDACT_MARGIN = 16 * 1024
# The longest message sent to the driver or logged: the driver must be able to read it, kubectl to show it.
MAX_MESSAGE_CHARS = 4096


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


def echo(value: object) -> str:
    """A value the user wrote, quoted for a message as repr quotes it, cut after ECHO_CHARS with a note of its
    length. Every message that repeats input uses it, so a 1 MB objectName makes a message of 250 characters."""
    if isinstance(value, str):
        if len(value) <= ECHO_CHARS:
            return repr(value)
        shown = redact_text(value[:ECHO_CHARS + ECHO_REDACT_MARGIN])[:ECHO_CHARS]
        return f"{shown!r}… ({len(value)} characters, truncated)"
    text = repr(value)
    if len(text) <= ECHO_CHARS:
        return text
    return f"{redact_text(text[:ECHO_CHARS + ECHO_REDACT_MARGIN])[:ECHO_CHARS]}… ({len(text)} characters, truncated)"


def bounded(message: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """A whole message cut to `limit` characters, its start and end kept: the last guard before it is sent."""
    if len(message) <= limit:
        return message
    note = f" … ({len(message)} characters, truncated) … "
    head = (limit - len(note)) * 3 // 4
    tail = limit - len(note) - head
    return message[:head] + note + message[len(message) - tail:]


def exception_chain(exc: BaseException) -> list[BaseException]:
    """The exception and every one it came from: causes, contexts, and the exceptions libraries keep
    inside (azure-core's `inner_exception`, urllib3's `reason`, exceptions passed as arguments)."""
    seen: list[BaseException] = []
    pending: list[object] = [exc]
    while pending:
        current = pending.pop(0)
        if not isinstance(current, BaseException) or any(current is s for s in seen):
            continue
        seen.append(current)
        pending.extend([current.__cause__, current.__context__, getattr(current, "inner_exception", None),
                        getattr(current, "reason", None), *current.args])
    return seen
