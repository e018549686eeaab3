"""Deadlines as absolute `time.monotonic()` values, so every layer can ask how much time is left.

kubelet gives NodePublish about two minutes and the driver passes that deadline through to us; a call
without a deadline (a hand-made client) gets DEFAULT_BUDGET_SECONDS.
"""

from __future__ import annotations

import time

from provider.errors import ErrorKind, ProviderError

DEFAULT_BUDGET_SECONDS = 110.0
# Kept back from the caller's deadline so our error reaches the driver before its own timeout fires.
SAFETY_MARGIN_SECONDS = 0.25


def deadline_from(time_remaining: float | None) -> float:
    """The absolute deadline for a call that has time_remaining seconds left (None: no deadline)."""
    budget = DEFAULT_BUDGET_SECONDS if time_remaining is None else time_remaining - SAFETY_MARGIN_SECONDS
    return time.monotonic() + max(0.0, min(budget, DEFAULT_BUDGET_SECONDS))


def time_left(deadline: float, what: str) -> float:
    """Seconds left before deadline; raises DEADLINE_EXCEEDED naming `what` when none are."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise ProviderError(
            ErrorKind.DEADLINE_EXCEEDED,
            f"the mount deadline passed before {what}; check that the backend answers in time",
        )
    return left
