"""The process-wide fan-out pool and singleflight: bounds, order, failures, deadlines, sharing."""

from __future__ import annotations

import threading
import time

import pytest

from provider.fanout import DeadlinePassed, FairGate, FanOut
from provider.singleflight import Flights, FlightTimeout


def forever() -> float:
    return 60.0


def test_results_come_in_item_order_within_the_limit() -> None:
    fanout = FanOut(8, "test")
    running, peak, lock = [0], [0], threading.Lock()

    def work(item: int) -> int:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.02)
        with lock:
            running[0] -= 1
        return item * 10

    assert fanout.run(work, list(range(12)), 3, forever) == [i * 10 for i in range(12)]
    assert 2 <= peak[0] <= 3


def test_the_callers_thread_does_the_work_when_the_pool_is_busy() -> None:
    fanout = FanOut(1, "test")
    release = threading.Event()
    fanout._pool.submit(release.wait, 5)  # the only pool thread is taken
    threads: list[str] = []
    try:
        assert fanout.run(lambda i: threads.append(threading.current_thread().name) or i, [1, 2, 3], 3,
                          forever) == [1, 2, 3]
    finally:
        release.set()
    assert threads == [threading.current_thread().name] * 3


@pytest.mark.parametrize("items", [[], [7]])
def test_nothing_or_one_item_runs_in_the_callers_thread(items: list[int]) -> None:
    assert FanOut(2, "test").run(lambda i: i, items, 4, forever) == items


def test_the_first_failure_in_item_order_is_raised() -> None:
    def work(item: int) -> int:
        if item in (2, 5):
            time.sleep(0.05 if item == 2 else 0)
            raise ValueError(f"item {item}")
        return item

    with pytest.raises(ValueError, match="item"):
        FanOut(4, "test").run(work, list(range(8)), 4, forever)


def test_a_failure_stops_items_not_yet_started() -> None:
    started: list[int] = []

    def work(item: int) -> int:
        started.append(item)
        raise ValueError("no")

    with pytest.raises(ValueError):
        FanOut(1, "test").run(work, list(range(50)), 2, forever)
    assert len(started) <= 3


def test_the_deadline_ends_the_wait() -> None:
    end = time.monotonic() + 0.2
    release = threading.Event()

    def work(item: int) -> int:
        if item == 1:
            release.wait(5)
        return item

    try:
        with pytest.raises(DeadlinePassed):
            FanOut(2, "test").run(work, [0, 1], 2, lambda: end - time.monotonic())
    finally:
        release.set()


def test_waiters_share_the_call_in_flight_and_nothing_is_kept_after() -> None:
    flights: Flights[int] = Flights()
    entered, release = threading.Event(), threading.Event()
    calls: list[int] = []
    results: list[tuple[int, bool]] = []

    def leader_call() -> int:
        calls.append(1)
        entered.set()
        release.wait(5)
        return 42

    leader = threading.Thread(target=lambda: results.append(flights.do("k", leader_call, 5)))
    leader.start()
    entered.wait(5)
    waiters = [threading.Thread(target=lambda: results.append(flights.do("k", lambda: calls.append(2) or 0, 5)))
               for _ in range(3)]
    for waiter in waiters:
        waiter.start()
    time.sleep(0.05)
    release.set()
    for thread in (leader, *waiters):
        thread.join(5)
    assert calls == [1]
    assert sorted(results) == [(42, False), (42, True), (42, True), (42, True)]
    assert flights.in_flight() == 0
    assert flights.do("k", lambda: 7, 1) == (7, False)


def test_other_keys_do_not_wait_and_failures_are_shared() -> None:
    flights: Flights[int] = Flights()
    entered, release = threading.Event(), threading.Event()
    errors: list[str] = []

    def failing() -> int:
        entered.set()
        release.wait(5)
        raise ValueError("vault down")

    def attempt() -> None:
        try:
            flights.do("a", failing, 5)
        except ValueError as exc:
            errors.append(str(exc))

    leader = threading.Thread(target=attempt)
    leader.start()
    entered.wait(5)
    assert flights.do("b", lambda: 1, 1) == (1, False)
    waiter = threading.Thread(target=attempt)
    waiter.start()
    time.sleep(0.05)
    release.set()
    leader.join(5)
    waiter.join(5)
    assert errors == ["vault down", "vault down"]


def test_a_waiter_gives_up_at_its_timeout() -> None:
    flights: Flights[int] = Flights()
    entered, release = threading.Event(), threading.Event()
    leader = threading.Thread(target=lambda: flights.do("k", lambda: entered.set() or release.wait(5) or 1, 5))
    leader.start()
    entered.wait(5)
    try:
        with pytest.raises(FlightTimeout):
            flights.do("k", lambda: 2, 0.05)
    finally:
        release.set()
        leader.join(5)


def test_the_fair_gate_admits_its_capacity_then_waiters_in_the_order_they_came() -> None:
    gate = FairGate(2)
    assert gate.acquire(1) and gate.acquire(1)
    admitted: list[int] = []
    lock = threading.Lock()

    def waiter(number: int) -> None:
        assert gate.acquire(30)
        with lock:
            admitted.append(number)

    threads = []
    for number in range(5):
        thread = threading.Thread(target=waiter, args=(number,))
        thread.start()
        threads.append(thread)
        while len(gate._waiting) <= number:  # queued before the next one starts
            time.sleep(0.001)
    for number in range(5):
        gate.release()
        while len(admitted) <= number:
            time.sleep(0.001)
    for thread in threads:
        thread.join()
    assert admitted == [0, 1, 2, 3, 4]


def test_a_waiter_that_times_out_leaves_the_queue_and_the_slot_goes_on() -> None:
    gate = FairGate(1)
    assert gate.acquire(1)
    assert gate.acquire(0.05) is False
    assert not gate._waiting
    gate.release()
    assert gate.acquire(0) is True
    gate.release()
    assert gate._holders == 0
