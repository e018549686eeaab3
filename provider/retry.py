"""The one retry loop for backend calls: transient failures only, jittered exponential backoff or the
server's Retry-After, and never a wait that would end past the mount's deadline.

A backend says what is transient (`transient` for exceptions, `retry_answer` for answers that came back,
such as a 503) and how hard to try (a RetryPolicy); the loop does the rest. A retryable exception that
is not retried any more is raised as GaveUp, with the last one as its cause.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from provider.deadline import time_left

T = TypeVar("T")
# What a classifier says of a failure or an answer: (worth another attempt, seconds the server asked to wait).
Verdict = tuple[bool, float | None]


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int  # calls in all, the first included
    base_delay: float  # the first backoff's ceiling; each one doubles it
    max_delay: float  # the largest backoff ceiling
    max_retry_after: float | None = None  # a longer Retry-After is cut to this (None: as asked)
    margin: float = 0.0  # seconds that must remain before the deadline after a wait

    def backoff(self, attempt: int) -> float:
        """Full-jitter exponential backoff for the attempt-th retry (1-based): between half the ceiling and it."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)

    def delay(self, attempt: int, asked: float | None) -> float:
        """The wait before the attempt-th retry: the server's ask (with a little jitter, so clients told the
        same do not come back in step), else the backoff."""
        if asked is None:
            return self.backoff(attempt)
        if self.max_retry_after is not None:
            asked = min(asked, self.max_retry_after)
        return asked + random.uniform(0, min(1.0, asked * 0.1))


class GaveUp(Exception):
    """A transient failure that we stopped retrying; `cause` is the last one, `wait` the server's ask."""

    def __init__(self, cause: BaseException, attempts: int, wait: float | None, past_deadline: bool = False) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.attempts = attempts
        self.wait = wait
        self.past_deadline = past_deadline  # the next wait would have ended after the deadline


def _never(_: object) -> Verdict:
    return False, None


def call_with_retries(
    call: Callable[[float], T],
    deadline: float,
    what: str,
    policy: RetryPolicy,
    transient: Callable[[BaseException], Verdict],
    retry_answer: Callable[[T], Verdict] = _never,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """call(seconds_left) until it succeeds, fails for good, or the next wait would pass the deadline.

    Raises DEADLINE_EXCEEDED (naming `what`) when no time is left for a call, the permanent exception
    itself, or GaveUp wrapping the last transient one. An answer `retry_answer` wants retried is returned
    as it is when no attempt is left.
    """
    attempt = 0
    while True:
        left = time_left(deadline, what)
        try:
            result = call(left)
        except Exception as exc:
            retryable, asked = transient(exc)
            if not retryable:
                raise
            attempt += 1
            delay = policy.delay(attempt, asked)
            past_deadline = time.monotonic() + delay + policy.margin >= deadline
            if attempt >= policy.max_attempts or past_deadline:
                raise GaveUp(exc, attempt, asked, past_deadline) from exc
            sleep(delay)
            continue
        retryable, asked = retry_answer(result)
        if not retryable:
            return result
        attempt += 1
        delay = policy.delay(attempt, asked)
        if attempt >= policy.max_attempts or time.monotonic() + delay + policy.margin >= deadline:
            return result
        sleep(delay)


class HeaderPairs(Protocol):
    """Response headers of any HTTP client: what retry_after reads of them."""

    def items(self) -> Iterable[tuple[str, str]]: ...


def retry_after(headers: HeaderPairs, now: float | None = None) -> float | None:
    """Seconds the server asks us to wait: retry-after-ms, x-ms-retry-after-ms, or Retry-After (seconds or an
    HTTP date)."""
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
