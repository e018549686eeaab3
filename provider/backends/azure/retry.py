"""Retries of transient Key Vault failures (429, 5xx, dropped connections), always inside the deadline.

azure-core's own retries are switched off on our clients (retry_total=0) so that this loop is the only
one: jittered exponential backoff, or the server's Retry-After when it sends one, and never a sleep
that would end past the mount's deadline.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable, Mapping
from typing import TypeVar

from provider.deadline import time_left

T = TypeVar("T")

MAX_ATTEMPTS = 4
BASE_DELAY_SECONDS = 0.4
MAX_DELAY_SECONDS = 8.0
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class GaveUp(Exception):
    """A transient failure that we stopped retrying; `cause` is the last one, `wait` the server's ask."""

    def __init__(self, cause: BaseException, attempts: int, wait: float | None, past_deadline: bool = False) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.attempts = attempts
        self.wait = wait
        self.past_deadline = past_deadline  # the next wait would have ended after the deadline


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds the server asks us to wait: retry-after-ms, x-ms-retry-after-ms, or Retry-After."""
    lowered = {key.lower(): value for key, value in headers.items()}
    for name in ("retry-after-ms", "x-ms-retry-after-ms"):
        try:
            return max(0.0, float(lowered[name]) / 1000)
        except (KeyError, ValueError):
            pass
    value = lowered.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def backoff(attempt: int) -> float:
    """Full-jitter exponential backoff for the attempt-th retry (1-based)."""
    ceiling = min(MAX_DELAY_SECONDS, BASE_DELAY_SECONDS * 2 ** (attempt - 1))
    return random.uniform(ceiling / 2, ceiling)


def call_with_retries(
    call: Callable[[float], T],
    deadline: float,
    what: str,
    transient: Callable[[BaseException], tuple[bool, float | None]],
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """call(seconds_left) until it succeeds, fails for good, or the next wait would pass the deadline.

    `transient(exc)` says whether exc is worth another attempt and how long the server asked to wait.
    Raises the permanent exception itself, or GaveUp wrapping the last transient one.
    """
    attempt = 0
    while True:
        left = time_left(deadline, what)
        try:
            return call(left)
        except Exception as exc:
            retryable, asked = transient(exc)
            if not retryable:
                raise
            attempt += 1
            delay = backoff(attempt) if asked is None else asked + random.uniform(0, min(1.0, asked * 0.1))
            past_deadline = time.monotonic() + delay >= deadline
            if attempt >= MAX_ATTEMPTS or past_deadline:
                raise GaveUp(exc, attempt, asked, past_deadline) from exc
            sleep(delay)
