"""Bounded parallel work for one mount, on a pool of threads each backend builds once: every backend's
fan-out (Vault's reads, Key Vault's version lists and gets) goes through `FanOut.run`.

A mount's calls run at most `limit` at a time. The mount's own thread works through the list too, so
a mount never waits for a pool thread: when every pool thread is busy with other mounts, it simply
does its calls itself, one after another. No thread is started per mount (starting eight threads
cost about a millisecond a mount), and the whole process never has more than the pool's threads
calling backends on behalf of helpers.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class FairGate:
    """At most `capacity` holders at once; waiters get in strictly in the order they came (FIFO).

    Threads beyond the capacity sleep instead of competing for the interpreter lock: with dozens of
    runnable threads, Python's lock hand-off starves some of them, and their mounts take several times
    longer than the others'."""

    def __init__(self, capacity: int) -> None:
        self.capacity = max(1, capacity)
        self._lock = threading.Lock()
        self._holders = 0
        self._waiting: deque[threading.Event] = deque()

    def acquire(self, timeout: float) -> bool:
        with self._lock:
            if self._holders < self.capacity and not self._waiting:
                self._holders += 1
                return True
            turn = threading.Event()
            self._waiting.append(turn)
        if turn.wait(max(0.0, timeout)):
            return True
        with self._lock:
            if turn.is_set():  # handed over just as the wait ended: ours after all
                return True
            self._waiting.remove(turn)
            return False

    def release(self) -> None:
        with self._lock:
            if self._waiting:
                self._waiting.popleft().set()  # the slot passes straight to the longest waiter
            else:
                self._holders -= 1


class DeadlinePassed(Exception):
    """Some items were not done when the deadline passed; the caller says what that means.

    An item's own call may raise it too, when it ended because the deadline came (a timeout cut to the
    time left): that item counts as not done. `pending` holds the indexes of the items not done."""

    def __init__(self, pending: Sequence[int] = ()) -> None:
        super().__init__("the deadline passed")
        self.pending = tuple(pending)


class FanOut:
    """`run(fn, items, limit, timeout)`: fn over items, at most `limit` at once, results in item order."""

    def __init__(self, workers: int, name: str) -> None:
        self.workers = max(1, workers)
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix=name)

    def run(self, fn: Callable[[T], R], items: Sequence[T], limit: int,
            time_left: Callable[[], float]) -> list[R]:
        """Results in item order. The first failure (in item order among those done) is raised as soon as it
        is seen; DeadlinePassed when time_left() reaches zero first."""
        if len(items) <= 1 or limit <= 1:
            results: list[R] = []
            for index, item in enumerate(items):
                try:
                    results.append(fn(item))
                except DeadlinePassed:
                    raise DeadlinePassed(range(index, len(items))) from None
            return results
        batch = _Batch(fn, items)
        for _ in range(min(limit, len(items)) - 1):
            self._pool.submit(batch.work)
        try:
            batch.work()
            return batch.results(time_left)
        finally:
            batch.cancel()


class _Batch(Generic[T, R]):
    """One mount's items: taken one at a time by whichever thread is free, results kept by index."""

    def __init__(self, fn: Callable[[T], R], items: Sequence[T]) -> None:
        self._fn = fn
        self._items = items
        self._next = 0
        self._done = 0
        self._cancelled = False
        self._results: list[R | None] = [None] * len(items)
        self._errors: list[BaseException | None] = [None] * len(items)
        self._finished = [False] * len(items)
        self._changed = threading.Condition()

    def work(self) -> None:
        while True:
            with self._changed:
                if self._cancelled or self._next >= len(self._items) or any(self._errors):
                    return
                index = self._next
                self._next += 1
            try:
                result: R | None = self._fn(self._items[index])
                error: BaseException | None = None
            except BaseException as exc:  # handed to the mount's thread, raised there
                result, error = None, exc
            with self._changed:
                self._results[index] = result
                self._errors[index] = error
                self._finished[index] = not isinstance(error, DeadlinePassed)
                self._done += 1
                self._changed.notify_all()

    def results(self, time_left: Callable[[], float]) -> list[R]:
        with self._changed:
            while True:
                failed = next((e for e in self._errors if e is not None), None)
                if isinstance(failed, DeadlinePassed):
                    raise DeadlinePassed([i for i, finished in enumerate(self._finished) if not finished])
                if failed is not None:
                    raise failed
                if self._done == len(self._items):
                    return list(self._results)  # type: ignore[arg-type]
                left = time_left()
                if left <= 0:
                    raise DeadlinePassed([i for i, finished in enumerate(self._finished) if not finished])
                self._changed.wait(left)

    def cancel(self) -> None:
        """Helpers that start after the mount has answered take nothing."""
        with self._changed:
            self._cancelled = True
