"""Calls to Vault (timeouts inside the mount deadline, bounded retries, metrics) and the token cache.

A call gives every attempt a timeout within the time left, retries only what may succeed a moment
later (no connection; 412, 429, 5xx; a non-idempotent call only when Vault cannot have acted on it),
with jittered backoff that honours Retry-After, and answers with the status and the parsed JSON.
What a status means is for the caller, who knows which object it was reading.
"""

from __future__ import annotations

import logging
import re
import socket
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from provider.backends.vault.declaration import DECLARATION
from provider.backends.vault.httpadapter import (
    ConnectFailed,
    PooledAdapter,
    ReadTimeout,
    Reply,
    TLSFailed,
    TransportError,
)
from provider.backends.vault.redirects import RedirectRefused
from provider.errors import ErrorKind, ProviderError
from provider.gojson import parse_json
from provider.metrics import METRICS, Metrics
from provider.redaction import redact_text
from provider.retry import GaveUp, RetryPolicy, Verdict, call_with_retries, retry_after

log = logging.getLogger(__name__)

BACKEND = DECLARATION.name  # the metrics label
CONNECT_TIMEOUT = 5.0
REQUEST_TIMEOUT = 30.0
# Three calls at most; Retry-After honoured up to 5 s; half a second kept back for the answer.
POLICY = RetryPolicy(max_attempts=3, base_delay=0.3, max_delay=1.2, max_retry_after=5.0, margin=0.5)
RETRY_STATUSES = frozenset({412, 429, 500, 502, 503, 504})
# Statuses at which Vault has not acted on the request, so even a PUT or POST may be sent again.
NOT_ACTED_STATUSES = frozenset({412, 429, 503})
IDEMPOTENT = frozenset({"GET", "LIST", "HEAD"})
_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\"\)]+)")
_SSL_LOCATION = re.compile(r"\(_ssl\.c:\d+\)")


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any = None  # the parsed JSON, None when the body was empty or not JSON
    not_json: bool = False
    retry_after: float | None = None

    @property
    def errors(self) -> list[str]:
        found = self.body.get("errors") if isinstance(self.body, dict) else None
        return [redact_text(str(e)) for e in found] if isinstance(found, list) else []

    @property
    def warnings(self) -> list[str]:
        found = self.body.get("warnings") if isinstance(self.body, dict) else None
        return [redact_text(str(w)) for w in found] if isinstance(found, list) else []

    @property
    def sealed(self) -> bool:
        return self.status == 503 and any("sealed" in e.lower() for e in self.errors)

    def detail(self) -> str:
        """Vault's own words, for the end of an error message."""
        parts = self.errors or [f"HTTP {self.status}"]
        if self.warnings:
            parts.append("warnings: " + "; ".join(self.warnings))
        return "; ".join(parts)


def call(
    adapter: PooledAdapter,
    method: str,
    path: str,
    *,
    token: str,
    deadline: float,
    operation: str,
    what: str,
    where: str,
    params: Sequence[tuple[str, str]] = (),
    body: str | None = None,
    metrics: Metrics = METRICS,
) -> Answer:
    """One Vault API call with retries. Raises ProviderError when Vault gave no usable HTTP answer."""
    headers = {"X-Vault-Token": token} if token else {}
    if body is not None:
        headers["Content-Type"] = "application/json"
    read_timeouts: list[float] = []

    def attempt(left: float) -> Answer:
        read_timeout = min(REQUEST_TIMEOUT, left)
        read_timeouts.append(read_timeout)
        started = time.monotonic()
        try:
            response = adapter.request(
                method, path, headers=dict(headers), raise_exception=False, params=list(params) or None,
                data=body.encode() if body is not None else None, timeout=(min(CONNECT_TIMEOUT, left), read_timeout),
            )
        except (TransportError, RedirectRefused):
            metrics.backend_request(BACKEND, operation, None, time.monotonic() - started)
            raise
        metrics.backend_request(BACKEND, operation, response.status_code, time.monotonic() - started)
        return _answer(response)

    def retry_answer(answer: Answer) -> Verdict:
        retry = answer.status in RETRY_STATUSES and (method in IDEMPOTENT or answer.status in NOT_ACTED_STATUSES)
        if retry and not answer.sealed:
            log.debug("a Vault call may be retried",
                      extra={"fields": {"operation": operation, "status": answer.status}})
            return True, answer.retry_after
        return False, None

    try:
        return call_with_retries(attempt, deadline, what, POLICY, _transient, retry_answer)
    except GaveUp as exc:
        raise _transport_error(exc.cause, what, where, deadline, read_timeouts[-1]) from exc.cause
    except TransportError as exc:
        raise _transport_error(exc, what, where, deadline, read_timeouts[-1]) from exc
    except RedirectRefused as exc:
        raise ProviderError(exc.kind, f"{exc.message} ({where}, while {what})") from exc


def _answer(response: Reply) -> Answer:
    content = response.content
    body: Any = None
    not_json = False
    if content.strip():
        try:
            body = parse_json(content)
        except ValueError:
            not_json = True
    # Only an answer that may be retried is asked for its Retry-After: the others are most answers.
    asked = retry_after(response.headers) if response.status_code in RETRY_STATUSES else None
    return Answer(status=response.status_code, body=body, not_json=not_json, retry_after=asked)


def _transient(exc: BaseException) -> Verdict:
    """Sent again only when it never reached Vault, so no action can be repeated."""
    return isinstance(exc, ConnectFailed), None


def _transport_error(exc: BaseException, what: str, where: str, deadline: float, timeout: float) -> ProviderError:
    if isinstance(exc, ReadTimeout):
        if time.monotonic() >= deadline - 0.1:
            return ProviderError(ErrorKind.DEADLINE_EXCEEDED,
                                 f"{where} did not answer before the mount deadline while {what}; "
                                 "check that Vault is up, unsealed and not overloaded")
        return ProviderError(ErrorKind.UNAVAILABLE, f"{where} did not answer within {timeout:.0f}s while {what}")
    if isinstance(exc, TLSFailed):
        return ProviderError(ErrorKind.UNAVAILABLE,
                             f"TLS with {where} failed while {what} ({_short_reason(exc)}); check vaultCACertPath, "
                             "vaultCADirectory, vaultTLSServerName and the client certificate")
    return ProviderError(ErrorKind.UNAVAILABLE, f"cannot connect to {where} while {what} ({_short_reason(exc)}); "
                                                "check vaultAddress and that Vault is running")


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost ssl or OS error under the transport's errors (or exc itself)."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 10:
        seen.append(current)
        if isinstance(current, (ssl.SSLError, ConnectionRefusedError, socket.gaierror, TimeoutError)):
            return current
        inner = [a for a in getattr(current, "args", ()) if isinstance(a, BaseException)]
        reason = getattr(current, "reason", None)
        current = (inner[0] if inner else reason if isinstance(reason, BaseException) else
                   current.__cause__ or current.__context__)
    return seen[-1]


# What an OpenSSL reason means for someone configuring the provider.
_TLS_REASONS = {
    "CERTIFICATE_REQUIRED": "Vault requires a client certificate",
    "WRONG_VERSION_NUMBER": "the address does not speak TLS; use http:// or the TLS port",
    "UNKNOWN_CA": "Vault does not trust the client certificate",
    "BAD_CERTIFICATE": "Vault refused the client certificate",
}


def _short_reason(exc: BaseException) -> str:
    """A short, value-free reason for a failed connection: what OpenSSL or the OS said."""
    cause = _root_cause(exc)
    if isinstance(cause, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {str(cause.verify_message).rstrip('.')}"
    if isinstance(cause, ssl.SSLEOFError):
        # With TLS 1.3 a server that wants a client certificate often just closes the connection.
        return "Vault closed the TLS connection; does it require a client certificate?"
    if isinstance(cause, ssl.SSLError):
        reason = str(cause.reason or "") or _SSL_LOCATION.sub("", str(cause.args[-1] if cause.args else "")).strip()
        meaning = next((text for key, text in _TLS_REASONS.items() if key in reason), "")
        return f"{meaning} ({reason})" if meaning else reason or "TLS error"
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    text = str(exc)
    found = _ERRNO.search(text)
    if found:
        return found.group(1).strip()
    return "connection timed out" if "timed out" in text else type(cause).__name__
