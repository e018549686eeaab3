"""Credential cache: reuse per identity until near expiry, never across identities."""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

import pytest
from azure.core.credentials import AccessTokenInfo
from azure.identity import ClientAssertionCredential, ClientSecretCredential, ManagedIdentityCredential

from provider.backends.azure import auth
from provider.backends.azure.clouds import KNOWN_CLOUDS, CloudEnvironment
from provider.backends.azure.config import Identity, ManagedIdentity, ServicePrincipal, WorkloadIdentity
from provider.errors import ErrorKind, ProviderError
from tests.support.clock import FakeClock

PUBLIC = KNOWN_CLOUDS["azurepubliccloud"]
CHINA = KNOWN_CLOUDS["azurechinacloud"]
SCOPE = "https://vault.azure.net/.default"
WI = WorkloadIdentity("tenant", "client", "team", "app", "jwt-1")


class Inner:
    """Stands in for an azure-identity credential: counts requests, hands out numbered tokens."""

    def __init__(self, lifetime: float = 3600, refresh_in: float | None = None) -> None:
        self.lifetime = lifetime
        self.refresh_in = refresh_in
        self.calls: list[tuple[tuple[str, ...], dict[str, Any]]] = []
        self._numbers = itertools.count(1)

    def get_token_info(self, *scopes: str, options: Any = None) -> AccessTokenInfo:
        self.calls.append((scopes, dict(options or {})))
        time.sleep(0.01)
        refresh_on = int(time.time() + self.refresh_in) if self.refresh_in is not None else None
        return AccessTokenInfo(f"token-{next(self._numbers)}", int(time.time() + self.lifetime), refresh_on=refresh_on)


@pytest.mark.parametrize(
    ("first", "second", "cloud2", "same"),
    [
        (WI, WorkloadIdentity("tenant", "client", "team", "app", "jwt-2"), PUBLIC, True),  # a fresher pod token
        (WI, WorkloadIdentity("TENANT", "CLIENT", "team", "app", "jwt-1"), PUBLIC, True),
        (WI, WorkloadIdentity("tenant", "client", "team", "other-sa", "jwt-1"), PUBLIC, False),
        (WI, WorkloadIdentity("tenant", "client", "other-ns", "app", "jwt-1"), PUBLIC, False),
        (WI, WorkloadIdentity("tenant", "client2", "team", "app", "jwt-1"), PUBLIC, False),
        (WI, WorkloadIdentity("tenant2", "client", "team", "app", "jwt-1"), PUBLIC, False),
        (WI, WI, CHINA, False),
        (ServicePrincipal("t", "c", "s1"), ServicePrincipal("t", "c", "s1"), PUBLIC, True),
        (ServicePrincipal("t", "c", "s1"), ServicePrincipal("t", "c", "wrong"), PUBLIC, False),
        (ServicePrincipal("t", "c", "s1"), WorkloadIdentity("t", "c", "", "", "s1"), PUBLIC, False),
        (ManagedIdentity("t", ""), ManagedIdentity("t", ""), PUBLIC, True),
        (ManagedIdentity("t", ""), ManagedIdentity("t", "uami"), PUBLIC, False),
    ],
)
def test_identity_keys(first: Identity, second: Identity, cloud2: CloudEnvironment, same: bool) -> None:
    assert (auth.identity_key(first, PUBLIC) == auth.identity_key(second, cloud2)) is same


def test_service_principal_key_holds_no_secret() -> None:
    assert "s3cr3t" not in repr(auth.identity_key(ServicePrincipal("t", "c", "s3cr3t"), PUBLIC))


def test_cached_token_is_reused_until_near_expiry() -> None:
    inner = Inner(lifetime=3600)
    credential = auth.CachedCredential(inner)
    first = credential.get_token_info(SCOPE, options={"tenant_id": "t", "enable_cae": True})
    again = credential.get_token_info(SCOPE, options={"tenant_id": "t", "enable_cae": True})
    assert (first.token, again.token, len(inner.calls)) == ("token-1", "token-1", 1)
    other_scope = credential.get_token_info("https://vault.azure.cn/.default", options={"tenant_id": "t"})
    assert other_scope.token == "token-2"
    claims = credential.get_token_info(SCOPE, options={"tenant_id": "t", "claims": "{}"})
    assert claims.token == "token-3"  # a claims challenge always asks again


@pytest.mark.parametrize(("lifetime", "refresh_in"), [(200, None), (3600, -1)])
def test_near_expiry_or_past_refresh_on_asks_again(lifetime: float, refresh_in: float | None) -> None:
    inner = Inner(lifetime=lifetime, refresh_in=refresh_in)
    credential = auth.CachedCredential(inner)
    assert [credential.get_token_info(SCOPE).token for _ in range(2)] == ["token-1", "token-2"]


def test_get_token_passes_tenant_and_claims() -> None:
    inner = Inner()
    token = auth.CachedCredential(inner).get_token(SCOPE, tenant_id="t1", enable_cae=True)
    assert token.token == "token-1"
    assert inner.calls[0] == ((SCOPE,), {"enable_cae": True, "tenant_id": "t1"})


def test_concurrent_mounts_make_one_token_request() -> None:
    inner = Inner()
    credential = auth.CachedCredential(inner)
    tokens: list[str] = []
    threads = [threading.Thread(target=lambda: tokens.append(credential.get_token_info(SCOPE).token))
               for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (set(tokens), len(inner.calls)) == ({"token-1"}, 1)


@pytest.mark.parametrize(
    ("identity", "kind"),
    [(WI, ClientAssertionCredential), (ServicePrincipal("t", "c", "s"), ClientSecretCredential),
     (ManagedIdentity("t", ""), ManagedIdentityCredential), (ManagedIdentity("t", "uami"), ManagedIdentityCredential)],
)
def test_new_credential_kinds(identity: Identity, kind: type) -> None:
    credential, assertion = auth.new_credential(identity, PUBLIC)
    assert isinstance(credential._inner, kind)
    assert (assertion is not None) is isinstance(identity, WorkloadIdentity)


def test_identity_cache_reuses_and_separates() -> None:
    made: list[str] = []
    cache: auth.IdentityCache[tuple[str, auth.CachedCredential]] = auth.IdentityCache(
        lambda vault, credential: (made.append(vault), (vault, credential))[1])
    a1 = cache.clients(WI, PUBLIC, "https://kv1.vault.azure.net/")
    a2 = cache.clients(WorkloadIdentity("tenant", "client", "team", "app", "jwt-2"), PUBLIC, "https://kv1.vault.azure.net/")
    a3 = cache.clients(WI, PUBLIC, "https://kv2.vault.azure.net/")
    b = cache.clients(WorkloadIdentity("tenant", "client", "team", "intruder", "jwt-1"), PUBLIC,
                      "https://kv1.vault.azure.net/")
    assert a1 is a2 and a1[1] is a3[1]
    assert b[1] is not a1[1]
    assert made == ["https://kv1.vault.azure.net/", "https://kv2.vault.azure.net/", "https://kv1.vault.azure.net/"]
    assert len(cache) == 2


def test_workload_identity_uses_the_latest_pod_token() -> None:
    cache: auth.IdentityCache[auth.CachedCredential] = auth.IdentityCache(lambda vault, credential: credential)
    credential = cache.clients(WI, PUBLIC, "v")
    cache.clients(WorkloadIdentity("tenant", "client", "team", "app", "jwt-2"), PUBLIC, "v")
    assert credential._inner._func() == "jwt-2"


def test_identity_cache_is_bounded_and_drops_idle_entries() -> None:
    clock = FakeClock()
    cache: auth.IdentityCache[object] = auth.IdentityCache(lambda v, c: object(), max_entries=2, idle_seconds=0.05,
                                                           now=clock)
    for sa in ("a", "b", "c"):
        cache.clients(WorkloadIdentity("t", "c", "ns", sa, "jwt"), PUBLIC, "v")
    assert len(cache) == 2
    clock.advance(0.1)
    cache.clients(WorkloadIdentity("t", "c", "ns", "d", "jwt"), PUBLIC, "v")
    assert len(cache) == 1


class Answered:
    """Stands in for an azure-identity credential that fails: each call 'receives' the next status (None:
    MSAL replays its cached answer without a request) through the raw_response_hook, then raises."""

    def __init__(self, statuses: auth.TokenStatuses, received: list[int | None]) -> None:
        self.statuses = statuses
        self.received = received

    def get_token_info(self, *scopes: str, options: Any = None) -> AccessTokenInfo:
        status = self.received.pop(0)
        if status is not None:
            request = type("Request", (), {"url": "https://login.example/t/oauth2/v2.0/token?x=1"})()
            response = type("Response", (), {"status_code": status})()
            self.statuses(type("PipelineResponse", (), {"http_request": request, "http_response": response})())
        raise auth.ClientAuthenticationError("Authentication failed")


@pytest.mark.parametrize(
    ("received", "raised"),
    [
        ([503], [auth.TokenServiceUnavailable]),  # Entra ID or IMDS down
        ([429, None, None], [auth.TokenServiceUnavailable] * 3),  # MSAL replays a throttled answer
        ([400], [auth.ClientAuthenticationError]),  # a wrong identity stays an authentication failure
        ([503, 401, None], [auth.TokenServiceUnavailable, auth.ClientAuthenticationError,
                            auth.ClientAuthenticationError]),
    ],
)
def test_token_endpoint_outages_are_told_apart_from_refusals(received: list[int | None], raised: list[type]) -> None:
    statuses = auth.TokenStatuses()
    credential = auth.CachedCredential(Answered(statuses, received), statuses)
    for expected in raised:
        with pytest.raises(Exception) as caught:
            credential.get_token_info(SCOPE)
        assert type(caught.value) is expected


def test_a_token_request_held_up_does_not_hold_other_mounts_of_the_identity_forever() -> None:
    entered, release = threading.Event(), threading.Event()

    class Hanging:
        def get_token_info(self, *scopes: str, options: object = None) -> AccessTokenInfo:
            entered.set()
            release.wait(5)
            return AccessTokenInfo("token", int(time.time()) + 3600)

    credential = auth.CachedCredential(Hanging(), wait_seconds=0.05)
    first = threading.Thread(target=credential.get_token_info, args=("scope",))
    first.start()
    try:
        entered.wait(5)
        with pytest.raises(ProviderError) as caught:
            credential.get_token_info("scope")
        assert caught.value.kind is ErrorKind.UNAVAILABLE
        assert "waited over 0s for a token from Entra ID" in caught.value.message
    finally:
        release.set()
        first.join(5)
