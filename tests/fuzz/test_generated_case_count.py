"""The fuzz tests of one run generate at least 10,000 cases between them (the issue's floor)."""

from __future__ import annotations

import pytest

from tests.fuzz import budget

pytestmark = pytest.mark.fuzz
# Every fuzz test that calls budget.ran(); a run that selected only some of them cannot be judged.
FUZZ_TESTS = {
    "test_output_accepts_only_safe_paths",
    "test_request_parsing_never_crashes",
    "test_path_rules_agree_with_a_second_reading",
    "test_vault_plan_is_a_clean_error_or_safe_paths",
    "test_azure_plan_is_a_clean_error_or_safe_paths",
    "test_servicer_answers_every_request_cleanly",
}


def test_the_fuzz_tests_generated_at_least_10000_cases(request: pytest.FixtureRequest) -> None:
    selected = {item.name for item in request.session.items if item.path.parent == request.path.parent}
    if not selected >= FUZZ_TESTS:
        pytest.skip("only some of the fuzz tests were selected in this run")
    counted = budget.cases()
    assert set(counted) == FUZZ_TESTS, f"fuzz tests that ran no case: {sorted(FUZZ_TESTS - set(counted))}"
    assert sum(counted.values()) >= budget.MINIMUM_CASES, counted
