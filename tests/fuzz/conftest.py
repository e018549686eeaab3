"""The case count check runs after every other fuzz test of the session."""

from __future__ import annotations

import pytest

COUNT_TEST = "test_generated_case_count.py"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.path.name == COUNT_TEST)
