"""How many generated cases the fuzz tests run, and a count of the cases that did run.

An explicit `@settings(max_examples=N)` wins over the loaded Hypothesis profile, so the profile alone
cannot make `make fuzz` longer: each test asks `examples(N)`, which is N in `make test` and LONG_FACTOR
times N under HYPOTHESIS_PROFILE=long. Each test body calls `ran()`, so test_generated_case_count.py can
check the suite's total.
"""

from __future__ import annotations

import os
import threading

LONG_FACTOR = 25
MINIMUM_CASES = 10_000  # the floor for one `make test` run
_lock = threading.Lock()
_cases: dict[str, int] = {}


def examples(count: int) -> int:
    return count * LONG_FACTOR if os.environ.get("HYPOTHESIS_PROFILE") == "long" else count


def ran(test: str) -> None:
    with _lock:
        _cases[test] = _cases.get(test, 0) + 1


def cases() -> dict[str, int]:
    with _lock:
        return dict(_cases)
