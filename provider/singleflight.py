"""Singleflight: callers asking for the same key while a call for it is in flight share that call's outcome.

Nothing is kept once the call has finished (caching is someone else's job); the key decides who may
share, so it must hold everything that makes two calls equal, the caller's identity included.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

R = TypeVar("R")


class FlightTimeout(Exception):
    """The call being waited for did not finish within the waiter's time."""


@dataclass
class _Flight(Generic[R]):
    # Made by the first waiter, under the flights' lock: most calls have none, and an Event costs a Condition.
    done: threading.Event | None = None
    result: R | None = None
    error: BaseException | None = None


class Flights(Generic[R]):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[Hashable, _Flight[R]] = {}

    def do(self, key: Hashable, call: Callable[[], R], timeout: float) -> tuple[R, bool]:
        """(outcome, shared): run call(), or wait up to `timeout` for the same key's call in flight and take its
        outcome (its exception is raised here too). `shared` is True for a waiter."""
        with self._lock:
            flight = self._flights.get(key)
            if flight is None:
                flight = self._flights[key] = _Flight()
            elif flight.done is None:
                flight.done = threading.Event()
            done = flight.done
        if done is not None:
            if not done.wait(timeout):
                raise FlightTimeout()
            if flight.error is not None:
                raise flight.error
            return flight.result, True  # type: ignore[return-value]
        try:
            flight.result = call()
            return flight.result, False
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            with self._lock:
                del self._flights[key]
                done = flight.done  # no waiter can come for this flight any more
            if done is not None:
                done.set()

    def in_flight(self) -> int:
        with self._lock:
            return len(self._flights)
