"""Bounded parallel work for one mount, on a pool of threads each backend builds once: every backend's
fan-out (Vault's reads, Key Vault's version lists and gets) goes through `FanOut.run`.

A mount's calls run at most `limit` at a time. The mount's own thread works through the list too, so
a mount never waits for a pool thread: when every pool thread is busy with other mounts, it simply
does its calls itself, one after another. No thread is started per mount (starting eight threads
cost about a millisecond a mount), and the whole process never has more than the pool's threads
calling backends on behalf of helpers.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

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
        self._pool = _Helpers(self.workers, name)

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
        # Only helpers that are free now: work queued behind other mounts' would wake a thread for nothing
        # once this mount's own thread has done it.
        self._pool.offer(batch.work, min(limit, len(items)) - 1)
        try:
            batch.work()
            return batch.results(time_left)
        finally:
            batch.cancel()


class _Helpers:
    """Up to `size` threads, started when first needed, taking work from one queue. A thread is free when
    it waits for work and no work is queued for it; `offer` hands work to free (or new) threads only."""

    def __init__(self, size: int, name: str) -> None:
        self.size = size
        self.name = name
        self._work: queue.SimpleQueue[Callable[[], object]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._free = 0

    def offer(self, work: Callable[[], object], helpers: int) -> int:
        """work() on up to `helpers` threads that are free or can be started; how many took it."""
        with self._lock:
            taken = min(max(0, helpers), self._free + self.size - self._threads)
            started = max(0, taken - self._free)
            self._free -= taken - started
            first = self._threads
            self._threads += started
        for _ in range(taken):
            self._work.put(work)
        for number in range(first, first + started):
            # Daemon threads: a helper's work belongs to a mount that waits for it, never to shutdown.
            threading.Thread(target=self._serve, name=f"{self.name}_{number}", daemon=True).start()
        return taken

    def submit(self, fn: Callable[..., object], *args: object) -> None:
        """fn(*args) on a helper, queued when none is free."""
        if not self.offer(lambda: fn(*args), 1):
            self._work.put(lambda: fn(*args))

    def _serve(self) -> None:
        while True:
            work = self._work.get()
            try:
                work()
            except BaseException:  # a batch keeps its own errors; anything else must not end the helper
                log.exception("a fan-out helper's work failed")
            with self._lock:
                self._free += 1


class _Batch(Generic[T, R]):
    """One mount's items: taken one at a time by whichever thread is free, results kept by index. The mount's
    thread sleeps on `_wake` (held from the start) until the last item is done or one has failed."""

    def __init__(self, fn: Callable[[T], R], items: Sequence[T]) -> None:
        self._fn = fn
        self._items = items
        self._next = 0
        self._done = 0
        self._cancelled = False
        self._failed = False
        self._results: list[R | None] = [None] * len(items)
        self._errors: list[BaseException | None] = [None] * len(items)
        self._finished = [False] * len(items)
        self._lock = threading.Lock()
        self._wake = threading.Lock()
        self._wake.acquire()
        self._woken = False

    def work(self) -> None:
        count = len(self._items)
        while True:
            with self._lock:
                if self._cancelled or self._failed or self._next >= count:
                    return
                index = self._next
                self._next += 1
            try:
                result: R | None = self._fn(self._items[index])
                error: BaseException | None = None
            except BaseException as exc:  # handed to the mount's thread, raised there
                result, error = None, exc
            with self._lock:
                self._results[index] = result
                self._errors[index] = error
                self._finished[index] = not isinstance(error, DeadlinePassed)
                self._done += 1
                self._failed = self._failed or error is not None
                if (self._failed or self._done == count) and not self._woken:
                    self._woken = True
                    self._wake.release()

    def results(self, time_left: Callable[[], float]) -> list[R]:
        while True:
            with self._lock:
                failed = next((e for e in self._errors if e is not None), None) if self._failed else None
                if isinstance(failed, DeadlinePassed):
                    raise DeadlinePassed([i for i, finished in enumerate(self._finished) if not finished])
                if failed is not None:
                    raise failed
                if self._done == len(self._items):
                    return list(self._results)  # type: ignore[arg-type]
            left = time_left()
            if left <= 0:
                with self._lock:  # listed only when reported: up to a thousand items, at most once a mount
                    unfinished = [i for i, finished in enumerate(self._finished) if not finished]
                raise DeadlinePassed(unfinished)
            if self._wake.acquire(timeout=left):
                self._wake.release()  # stays open: every later look finds the batch done or failed

    def cancel(self) -> None:
        """Helpers that start after the mount has answered take nothing."""
        with self._lock:
            self._cancelled = True
