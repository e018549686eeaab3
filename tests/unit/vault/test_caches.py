"""What the Vault backend keeps between mounts: token lives, leases and their renewal rules, the value cache."""

from __future__ import annotations

import dataclasses
import math

import pytest
from prometheus_client import CollectorRegistry

from provider.backends.vault.leases import Lease, LeaseCache, extend, lease_of
from provider.backends.vault.tokens import TokenCache, TokenKey, TokenLife
from provider.backends.vault.values import ValueCache, parse_duration
from provider.metrics import Metrics
from tests.support.clock import FakeClock

KEY = TokenKey("http://127.0.0.1:8200", "", "kubernetes", "role", "", "test", "nginx", "")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0", 0.0), ("45", 45.0), ("90s", 90.0), ("2m", 120.0), ("1m30s", 90.0), ("1h", 3600.0), ("1.5s", 1.5),
     ("1h2m3s", 3723.0)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "s", "2 m", "-1s", "500ms", "1d", "m2"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


def test_a_pod_key_adds_the_uid_to_a_service_account_key() -> None:
    assert KEY.for_pod("uid-1") == dataclasses.replace(KEY, pod_uid="uid-1")
    assert KEY.for_pod("uid-1") != KEY.for_pod("uid-2")


def test_a_token_life_renewed_moves_its_expiry_and_the_cache_hands_it_out_again() -> None:
    clock = FakeClock()
    cache = TokenCache(10, now=clock)
    life = cache.put(KEY, "t", 0.2, renewable=True)
    assert life.expires == pytest.approx(life.granted + 0.2)
    clock.advance(0.17)
    assert cache.life(KEY) is None  # past 80 %
    cache.put(KEY, "t2", 0.2)
    life2 = cache.life(KEY)
    assert life2 is not None and life2.increment == 0.2
    clock.advance(0.17)
    life2.renewed(10, clock())
    assert cache.life(KEY) is life2 and life2.increment == 0.2
    assert TokenLife("t", 0).expires == math.inf


def leased(seconds: float = 30, renewable: bool = True, lease_id: str = "db/creds/app/abc") -> dict[str, object]:
    return {"lease_id": lease_id, "lease_duration": seconds, "renewable": renewable,
            "data": {"username": "u", "password": "p"}}


@pytest.mark.parametrize(
    ("body", "has_lease"),
    [
        (leased(), True),
        ({"lease_id": "", "lease_duration": 2764800, "data": {"a": "b"}}, False),  # KV v1: a refresh hint only
        ({"lease_id": "x", "lease_duration": 0, "data": {}}, False),
        ({"lease_id": "x", "lease_duration": "soon", "data": {}}, False),
        ({"data": {"data": {"a": "b"}}}, False),  # KV v2
    ],
)
def test_which_answers_carry_a_lease(body: dict[str, object], has_lease: bool) -> None:
    assert (lease_of(body, TokenLife("t", 1200), 0.0) is not None) is has_lease


def test_a_lease_is_due_at_two_thirds_of_its_term_and_ends_with_its_token() -> None:
    lease = lease_of(leased(30), TokenLife("t", 1200, granted=0.0), 0.0)
    assert lease is not None
    start = lease.term_start
    assert not lease.due(start + 19.9) and lease.due(start + 20.1)
    assert lease.alive(start + 27) and not lease.alive(start + 28.5)
    short_token = lease_of(leased(30), TokenLife("t", 9, granted=0.0), 0.0)
    assert short_token is not None and short_token.end() == pytest.approx(short_token.creator.expires)
    assert short_token.due(short_token.term_start + 6.1)


def renewer(seconds: float | None, calls: list[str], name: str):  # type: ignore[no-untyped-def]
    def renew(_: object) -> float | None:
        calls.append(name)
        return seconds
    return renew


@pytest.mark.parametrize(
    ("lease_seconds", "renewable", "token_ttl", "token_renewable", "token_grant", "lease_grant", "calls", "kept"),
    [
        # the lease ends first and is renewable: renewed for its full duration, kept
        (30, True, 1200, True, 1200, 30, ["lease"], True),
        # renewal capped by the role's max_ttl to a sliver: new credentials
        (30, True, 1200, True, 1200, 3, ["lease"], False),
        # Vault refuses the renewal
        (30, True, 1200, True, 1200, None, ["lease"], False),
        # not renewable (a PKI certificate): new credentials, nothing asked
        (30, False, 1200, True, 1200, 30, [], False),
        # the token ends first: it is renewed, and the lease still has long to live
        (3600, False, 30, True, 30, None, ["token"], True),
        # the token ends first and cannot be renewed
        (3600, True, 30, False, 30, None, [], False),
        # the token is renewed, then the lease ends first and is renewed too
        (40, True, 30, True, 600, 40, ["token", "lease"], True),
    ],
)
def test_extending_a_due_lease(lease_seconds: float, renewable: bool, token_ttl: float, token_renewable: bool,
                               token_grant: float | None, lease_grant: float | None, calls: list[str],
                               kept: bool) -> None:
    clock = FakeClock()
    creator = TokenLife("t", token_ttl, token_renewable, granted=clock())
    lease = lease_of(leased(lease_seconds, renewable), creator, clock())
    assert lease is not None
    # Two thirds of the term have passed.
    shift = (lease.end() - lease.term_start) * 0.7
    lease.term_start -= shift
    lease.lease_end -= shift
    creator.granted -= shift
    made: list[str] = []
    metrics = Metrics(CollectorRegistry())
    assert extend(lease, renewer(token_grant, made, "token"), renewer(lease_grant, made, "lease"), metrics,
                  clock) is kept
    assert made == calls
    renewed = metrics.registry.get_sample_value("provider_cache_lookups_total",
                                                {"backend": "vault", "cache": "lease", "result": "renewed"})
    assert renewed == (1.0 if kept else None)
    if kept:
        assert not lease.due(clock())


def test_leases_end_by_age_and_by_the_size_bound() -> None:
    clock = FakeClock()
    metrics = Metrics(CollectorRegistry())
    cache = LeaseCache(2, metrics=metrics, now=clock)
    short = Lease(body={}, lease_id="a", renewable=False, duration=0.3, lease_end=clock() + 0.3,
                  creator=TokenLife("t", 0, granted=clock()), term_start=clock())
    cache.put("short", short)
    assert cache.get("short") is short
    clock.advance(0.28)
    assert cache.get("short") is None  # within its last tenth: never handed out
    assert metrics.registry.get_sample_value("provider_cache_lookups_total",
                                             {"backend": "vault", "cache": "lease", "result": "expired"}) == 1
    for name in ("a", "b", "c"):
        cache.put(name, lease_of(leased(), TokenLife("t", 0, granted=clock()), clock()))  # type: ignore[arg-type]
    assert [cache.get(n) is not None for n in ("a", "b", "c")] == [False, True, True]
    assert len(LeaseCache(0)) == 0 and LeaseCache(0).get("a") is None


def test_values_are_kept_for_their_ttl_and_bounded() -> None:
    clock = FakeClock()
    metrics = Metrics(CollectorRegistry())
    cache = ValueCache(0.2, size=2, metrics=metrics, now=clock)
    cache.put(("a", "r"), {"data": 1})
    assert cache.get(("a", "r")) == {"data": 1}
    assert cache.get(("b", "r")) is None
    clock.advance(0.21)
    assert cache.get(("a", "r")) is None
    lookups = {result: metrics.registry.get_sample_value(
        "provider_cache_lookups_total", {"backend": "vault", "cache": "value", "result": result})
        for result in ("hit", "miss", "expired")}
    assert lookups == {"hit": 1, "miss": 1, "expired": 1}
    for name in "xyz":
        cache.put(name, {"data": name})
    assert [cache.get(n) for n in "xyz"] == [None, {"data": "y"}, {"data": "z"}]


@pytest.mark.parametrize(("ttl", "size"), [(0, 10), (-1, 10), (5, 0)])
def test_the_value_cache_can_be_off(ttl: float, size: int) -> None:
    cache = ValueCache(ttl, size)
    cache.put("k", {"data": 1})
    assert not cache.enabled and cache.get("k") is None
