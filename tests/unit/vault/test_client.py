"""The token cache (official clientcache tests) and the TLS settings of a session (client_test TestNew)."""

from __future__ import annotations

import dataclasses
import ssl
import threading
import time
from pathlib import Path

import pytest

from provider.backends.vault.config import TLSSettings
from provider.backends.vault.tokens import TokenCache, TokenKey
from provider.backends.vault.transport import tls_context
from provider.errors import ProviderError
from tests.support.clock import FakeClock
from tests.support.openbao import make_tls_files

KEY = TokenKey("http://127.0.0.1:8200", "", "kubernetes", "role", "", "test", "nginx", "uid-1")


@pytest.mark.parametrize(
    ("change", "same_entry"),
    [  # TestCacheKeyedOnCorrectFields: every field of the pod identity and login setting is in the key
        ({}, True),
        ({"pod_uid": "uid-2"}, False),
        ({"service_account": "other"}, False),
        ({"pod_namespace": "other"}, False),
        ({"role": "other"}, False),
        ({"auth_mount": "jwt"}, False),
        ({"namespace": "team-a"}, False),
        ({"address": "http://127.0.0.1:8201"}, False),
        ({"audience": "custom"}, False),
    ],
)
def test_cache_is_keyed_on_the_pod_identity(change: dict[str, str], same_entry: bool) -> None:
    cache = TokenCache(10)
    cache.put(KEY, "token-1", 1200)
    assert (cache.get(dataclasses.replace(KEY, **change)) == "token-1") is same_entry


@pytest.mark.parametrize(("size", "kept"), [(-10, False), (-1, False), (0, False), (1, True)])
def test_cache_can_be_disabled(size: int, kept: bool) -> None:
    # TestCache_CanBeDisabled
    cache = TokenCache(size)
    cache.put(KEY, "token-1", 1200)
    assert (cache.get(KEY) is not None) is kept


def test_cache_is_bounded_least_recently_used_first() -> None:
    cache = TokenCache(2)
    keys = [dataclasses.replace(KEY, pod_uid=f"uid-{i}") for i in range(3)]
    cache.put(keys[0], "t0", 1200)
    cache.put(keys[1], "t1", 1200)
    assert cache.get(keys[0]) == "t0"
    cache.put(keys[2], "t2", 1200)
    assert [cache.get(k) for k in keys] == ["t0", None, "t2"]


def test_cached_token_is_dropped_near_its_ttl() -> None:
    clock = FakeClock()
    cache = TokenCache(10, now=clock)
    cache.put(KEY, "short", 0.25)
    assert cache.get(KEY) == "short"
    clock.advance(0.2)  # 80% of the TTL
    assert cache.get(KEY) is None


def test_parallel_lookups_share_one_lock_per_key() -> None:
    # TestParallelCacheAccess: 100 concurrent callers with one identity → one login.
    cache = TokenCache(10)
    logins = []

    def mount() -> None:
        with cache.lock_for(KEY):
            if cache.get(KEY) is None:
                logins.append(1)
                time.sleep(0.01)
                cache.put(KEY, "token", 1200)

    threads = [threading.Thread(target=mount) for _ in range(100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(logins) == 1


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return make_tls_files(tmp_path_factory.mktemp("tls"))


def test_tls_context_from_ca_file_directory_and_client_certificate(tls_files, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # TestNew: a CA file or a CA directory loads.
    directory = tmp_path / "cas"
    directory.mkdir()
    (directory / "a.pem").write_bytes(tls_files.ca.read_bytes())
    (directory / "b.pem").write_bytes(tls_files.other_ca.read_bytes())
    assert len(tls_context(TLSSettings(ca_cert=str(tls_files.ca))).get_ca_certs()) == 1
    assert len(tls_context(TLSSettings(ca_directory=str(directory))).get_ca_certs()) == 2
    context = tls_context(TLSSettings(ca_cert=str(tls_files.ca), client_cert=str(tls_files.client_cert),
                                      client_key=str(tls_files.client_key)))
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert tls_context(TLSSettings(skip_verify=True)).verify_mode == ssl.CERT_NONE


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("ca_directory", "vaultCADirectory file"),  # TestNew_Error: a non-PEM file in the CA directory
        ("ca_cert", "vaultCACertPath"),
        ("client_cert", "cannot load a PEM certificate and its key"),
    ],
)
def test_tls_context_errors_name_the_parameter(setting: str, message: str, tls_files, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    marker = "not-a-certificate-7d1e"
    (tmp_path / "junk.pem").write_text(marker)
    values = {"ca_directory": str(tmp_path), "ca_cert": str(tmp_path / "junk.pem"),
              "client_cert": str(tmp_path / "junk.pem")}
    extra = {"client_key": str(tls_files.client_key)} if setting == "client_cert" else {}
    with pytest.raises(ProviderError) as caught:
        tls_context(TLSSettings(**{setting: values[setting]}, **extra))
    assert message in caught.value.message
    assert marker not in caught.value.message
