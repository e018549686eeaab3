"""Version history selection (TestGetLatestNKeyVaultObjects, with the off-by-one fixed), version ids,
Retry-After parsing and the retry loop."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta

import pytest

from provider.backends.azure.retry import POLICY
from provider.backends.azure.versions import ListedVersion, select_versions, version_from_id
from provider.errors import ErrorKind, ProviderError
from provider.retry import GaveUp, call_with_retries, retry_after

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def listed(*names: str, disabled: str = "", missing_created: str = "") -> list[ListedVersion]:
    """Versions named in order newest first (a is newest), created a minute apart."""
    count = len(names)
    return [
        ListedVersion(name, name not in disabled,
                      None if name in missing_created else T0 + timedelta(minutes=count - i))
        for i, name in enumerate(names)
    ]


@pytest.mark.parametrize(
    ("versions", "start", "count", "expected"),
    [
        (listed("a", "b", "c", "d", "e"), "", 5, ["a", "b", "c", "d", "e"]),
        (random.Random(7).sample(listed("a", "b", "c", "d", "e"), 5), "", 5, ["a", "b", "c", "d", "e"]),
        (listed("a", "b"), "", 2, ["a", "b"]),
        (listed("a", "b"), "", 200, ["a", "b"]),
        (listed("a", "b", "c", "d", "e"), "c", 5, ["c", "d", "e"]),
        # fixed: exactly N when there are more (the official provider returns N + 1)
        (listed("a", "b", "c", "d", "e"), "", 3, ["a", "b", "c"]),
        (listed("a", "b", "c", "d", "e"), "b", 2, ["b", "c"]),
        # disabled versions are skipped, versions without a creation time sort as the epoch
        (listed("a", "b", "c", "d", disabled="b"), "", 3, ["a", "c", "d"]),
        (listed("a", "b", "c", missing_created="a"), "", 3, ["b", "c", "a"]),
        (listed("A", "b"), "a", 2, ["A", "b"]),
    ],
)
def test_select_versions(versions: list[ListedVersion], start: str, count: int, expected: list[str]) -> None:
    assert select_versions(versions, start, count, "object 0 (secret 'secret1')") == expected


@pytest.mark.parametrize(
    ("versions", "start", "message"),
    [
        (listed("a", "b", disabled="a"), "a", "objectVersion 'a' is not one of its enabled versions"),
        (listed("a", "b"), "zzz", "objectVersion 'zzz' is not one of its enabled versions"),
        (listed("a", disabled="a"), "", "has no enabled versions"),
        ([], "", "has no enabled versions"),
    ],
)
def test_select_versions_not_found(versions: list[ListedVersion], start: str, message: str) -> None:
    with pytest.raises(ProviderError) as caught:
        select_versions(versions, start, 3, "object 0 (secret 'secret1')")
    assert caught.value.kind is ErrorKind.NOT_FOUND
    assert message in caught.value.message


@pytest.mark.parametrize(
    ("identifier", "expected"),
    [
        ("https://test.vault.azure.net/secrets/secret1/v1", "v1"),
        ("https://v.vault.azure.net/keys/key1/0123456789abcdef0123456789abcdef", "0123456789abcdef0123456789abcdef"),
        ("https://v.vault.azure.net:443/certificates/c/v2/", "v2"),
        ("https://test.vault.azure.net/secrets/secret1", None),
        ("https://test.vault.azure.net/secrets/secret1/", None),
        ("", None),
        (None, None),
    ],
)
def test_version_from_id(identifier: str | None, expected: str | None) -> None:
    assert version_from_id(identifier) == expected


NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "3"}, 3.0),
        ({"retry-after": "0"}, 0.0),
        ({"Retry-After": "1.5"}, 1.5),
        ({"retry-after-ms": "250"}, 0.25),
        ({"x-ms-retry-after-ms": "1000", "Retry-After": "9"}, 1.0),
        ({"Retry-After": "Tue, 14 Nov 2023 22:13:30 GMT"}, 10.0),
        ({"Retry-After": "Tue, 14 Nov 2023 22:13:00 GMT"}, 0.0),
        ({"Retry-After": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after(headers, now=NOW + 0) == expected


@pytest.mark.parametrize("attempt", [1, 2, 3, 4, 5, 10])
def test_backoff_is_jittered_and_capped(attempt: int) -> None:
    delays = {round(POLICY.backoff(attempt), 6) for _ in range(20)}
    assert len(delays) > 1
    assert all(0 < d <= 8.0 for d in delays)


class Flaky(Exception):
    def __init__(self, wait: float | None = None) -> None:
        super().__init__("flaky")
        self.wait = wait


def transient(exc: BaseException) -> tuple[bool, float | None]:
    return (True, exc.wait) if isinstance(exc, Flaky) else (False, None)


def test_retries_until_success_and_honours_retry_after() -> None:
    outcomes: list[BaseException | str] = [Flaky(2.0), Flaky(), "ok"]
    slept: list[float] = []

    def call(left: float) -> str:
        item = outcomes.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item

    assert call_with_retries(call, time.monotonic() + 60, "reading", POLICY, transient, sleep=slept.append) == "ok"
    assert 2.0 <= slept[0] <= 2.2
    assert 0 < slept[1] <= 0.8


def test_permanent_errors_are_not_retried() -> None:
    calls: list[float] = []

    def call(left: float) -> str:
        calls.append(left)
        raise ValueError("permanent")

    with pytest.raises(ValueError, match="permanent"):
        call_with_retries(call, time.monotonic() + 60, "reading", POLICY, transient, sleep=lambda s: None)
    assert len(calls) == 1


def test_gives_up_when_the_wait_would_pass_the_deadline() -> None:
    slept: list[float] = []

    def call(left: float) -> str:
        raise Flaky(30.0)

    with pytest.raises(GaveUp) as caught:
        call_with_retries(call, time.monotonic() + 5, "reading", POLICY, transient, sleep=slept.append)
    assert (caught.value.attempts, caught.value.wait, slept) == (1, 30.0, [])


def test_gives_up_after_the_last_attempt() -> None:
    slept: list[float] = []

    def call(left: float) -> str:
        raise Flaky()

    with pytest.raises(GaveUp) as caught:
        call_with_retries(call, time.monotonic() + 60, "reading", POLICY, transient, sleep=slept.append)
    assert caught.value.attempts == 4
    assert len(slept) == 3


def test_no_call_after_the_deadline() -> None:
    with pytest.raises(ProviderError) as caught:
        call_with_retries(lambda left: "never", time.monotonic() - 1, "reading object 0", POLICY, transient)
    assert caught.value.kind is ErrorKind.DEADLINE_EXCEEDED
    assert "before reading object 0" in caught.value.message
