"""Every cache of the provider is bounded by size, not only by count: what one SPC (or what it makes a backend
answer) can leave behind after its mount is small, however large its texts and values."""

from __future__ import annotations

import dataclasses

import pytest

from provider import findings
from provider.backends.azure import auth
from provider.backends.azure.clouds import KNOWN_CLOUDS
from provider.backends.azure.config import WorkloadIdentity
from provider.backends.vault.leases import LeaseCache, lease_of
from provider.backends.vault.objects import ReadRequest
from provider.backends.vault.tokens import MAX_KEY_CHARS, TokenCache, TokenKey, TokenLife
from provider.backends.vault.values import KEPT_CHARS, ValueCache
from provider.backends.vault.yamlcore import CACHE_TEXT_CHARS, CACHED_TEXT_CHARS, TREES
from provider.backends.vault.yamlcore import composed as vault_tree
from provider.redaction import REDACTED, KnownSecrets

PUBLIC = KNOWN_CLOUDS["azurepubliccloud"]
KEY = TokenKey("http://127.0.0.1:8200", "", "kubernetes", "role", "", "test", "nginx", "")


def objects_text(index: int, size: int) -> str:
    return f"- {{objectName: o{index}, secretPath: p}}" + " " * (size - 40)


def test_objects_trees_are_kept_only_for_small_texts_and_within_a_text_budget() -> None:
    for index in range(20):  # distinct texts just over the per-text limit: none is kept
        vault_tree(objects_text(index, CACHED_TEXT_CHARS + 1))
    assert all(len(text) <= CACHED_TEXT_CHARS for text in TREES)
    for index in range(100):  # distinct texts at the limit: the budget keeps a few
        vault_tree(objects_text(1000 + index, CACHED_TEXT_CHARS))
    assert TREES.chars <= CACHE_TEXT_CHARS and len(TREES) <= CACHE_TEXT_CHARS // CACHED_TEXT_CHARS


@pytest.mark.parametrize(("body_chars", "kept"), [(100, True), (KEPT_CHARS - 500, True), (KEPT_CHARS + 1, False)])
def test_values_over_the_kept_size_are_not_kept(body_chars: int, kept: bool) -> None:
    cache = ValueCache(ttl=60)
    cache.put((KEY, ReadRequest("/v1/p")), {"data": {"v": "x" * body_chars}})
    assert (cache.get((KEY, ReadRequest("/v1/p"))) is not None) is kept


def test_value_cache_drops_the_oldest_past_its_size_budget() -> None:
    cache = ValueCache(ttl=60, chars=10 * 1024)
    for index in range(20):
        cache.put((KEY, ReadRequest(f"/v1/p{index}")), {"data": {"v": "x" * 1000}})
    assert 0 < cache.kept_chars <= 10 * 1024 and len(cache) < 20
    assert cache.get((KEY, ReadRequest("/v1/p19"))) is not None
    assert cache.get((KEY, ReadRequest("/v1/p0"))) is None


def leased(chars: int) -> dict[str, object]:
    return {"lease_id": "database/creds/r/1", "lease_duration": 600, "renewable": True,
            "data": {"password": "x" * chars}}


def test_leases_are_bounded_by_size() -> None:
    cache = LeaseCache(size=1000, chars=10 * 1024)
    creator = TokenLife("t", 1200)
    for index in range(20):
        lease = lease_of(leased(1000), creator)
        assert lease is not None
        cache.put((KEY, ReadRequest(f"/v1/p{index}")), lease)
    assert len(cache) < 20 and cache.get((KEY, ReadRequest("/v1/p19"))) is not None
    huge = lease_of(leased(KEPT_CHARS), creator)
    assert huge is not None
    cache.put((KEY, ReadRequest("/v1/huge")), huge)
    assert cache.get((KEY, ReadRequest("/v1/huge"))) is None


def test_tokens_of_login_settings_longer_than_any_real_one_are_not_kept() -> None:
    cache = TokenCache(10)
    cache.put(KEY, "t", 600)
    long_role = dataclasses.replace(KEY, role="r" * MAX_KEY_CHARS)
    cache.put(long_role, "t", 600)
    assert cache.get(KEY) == "t" and cache.get(long_role) is None
    assert cache.lock_for(long_role) is not cache.lock_for(long_role)  # nothing kept for it either


def test_known_secrets_are_bounded_by_size() -> None:
    known = KnownSecrets()
    known.add(["s" * (KnownSecrets.MAX_VALUE + 1)])
    assert known.scrub("s" * (KnownSecrets.MAX_VALUE + 1)) == "s" * (KnownSecrets.MAX_VALUE + 1)
    values = [f"{index:08d}" + "v" * 9000 for index in range(200)]  # 1.8 MB in all
    known.add(values)
    assert known._chars <= KnownSecrets.CHARS
    assert known.scrub(values[-1]) == REDACTED and known.scrub(values[0]) == values[0]


def test_a_long_text_is_scrubbed_without_holding_every_window() -> None:
    known = KnownSecrets()
    known.add(["client-secret-value"])
    text = "a" * 1_000_000 + "client-secret-value"
    assert known.scrub(text).endswith(REDACTED)


def test_warnings_remember_hashes_not_the_spcs_field_names() -> None:
    findings._warned.clear()
    findings.warn_once("ns/spc", "object field " + "f" * 1_000_000, "unknown field", {})
    assert all(isinstance(seen, int) for seen in findings._warned)


def test_azure_clients_per_identity_are_bounded() -> None:
    cache: auth.IdentityCache[object] = auth.IdentityCache(lambda vault, credential: object())
    identity = WorkloadIdentity("t", "c", "ns", "sa", "jwt")
    for index in range(auth.MAX_VAULTS_PER_IDENTITY + 50):
        cache.clients(identity, PUBLIC, f"https://kv{index}.vault.azure.net/")
    (entry,) = cache._entries.values()
    assert len(entry.clients) == auth.MAX_VAULTS_PER_IDENTITY
