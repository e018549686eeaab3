"""Credentials for Key Vault through azure-identity, cached per identity and never shared between two.

An identity is (kind, cloud authority, tenant, client) plus, for workload identity and identity binding,
the pod's namespace and service account, and for a service principal a digest of its secret (so a wrong
secret never finds a cached token). Each cached entry keeps one credential, whose access tokens are reused until five
minutes before they expire, and the Key Vault clients built on it.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from azure.core.credentials import AccessToken, AccessTokenInfo, TokenRequestOptions
from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError, ServiceResponseError
from azure.identity import ClientAssertionCredential, ClientSecretCredential, ManagedIdentityCredential

from provider.backends.azure.clouds import CloudEnvironment
from provider.backends.azure.config import (
    Identity,
    IdentityBinding,
    ManagedIdentity,
    PodIdentity,
    ServicePrincipal,
    WorkloadIdentity,
)
from provider.backends.azure.declaration import DECLARATION
from provider.backends.azure.tokenproxy import ProxyRoute, tls_refused, transport_reason
from provider.errors import ErrorKind, ProviderError
from provider.metrics import METRICS, Metrics

log = logging.getLogger(__name__)

BACKEND = DECLARATION.name  # the metrics label
# Refresh a cached access token this long before it expires (azure-core's policy uses the same margin).
REFRESH_MARGIN_SECONDS = 300
# Entra ID and IMDS calls: short timeouts and few retries, so a token never eats kubelet's 2 minutes.
IDENTITY_TRANSPORT: dict[str, Any] = {
    "connection_timeout": 5,
    "read_timeout": 20,
    "retry_total": 2,
    "retry_backoff_factor": 0.5,
    "retry_backoff_max": 4,
}
MAX_IDENTITIES = 512
# Vaults whose clients are kept per identity (an SPC may name a vault per object); the least recently
# used go first, so an SPC naming hundreds of vaults cannot grow the cache without end.
MAX_VAULTS_PER_IDENTITY = 64
IDLE_SECONDS = 3600
# How long a mount waits for another mount of the same identity to get its token: the identity
# transport's connect and read timeouts, so a hung token request cannot hold every later mount.
TOKEN_WAIT_SECONDS = IDENTITY_TRANSPORT["connection_timeout"] + IDENTITY_TRANSPORT["read_timeout"]

ClientsT = TypeVar("ClientsT")


# Answers of a token endpoint (Entra ID, IMDS) that say it is down or throttling, not that the identity is wrong.
TRANSIENT_TOKEN_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class TokenServiceUnavailable(Exception):
    """The token endpoint answered a transient status: the mount is UNAVAILABLE, not UNAUTHENTICATED."""

    def __init__(self, status: int) -> None:
        super().__init__(f"the token endpoint answered HTTP {status}")
        self.status = status


class TokenProxyUnreachable(Exception):
    """No answer from the identity-binding token proxy: refused, timed out, or its TLS not accepted."""

    def __init__(self, route: ProxyRoute, detail: str, tls: bool) -> None:
        super().__init__(f"the token proxy {route.url} could not be reached: {detail}")
        self.route = route
        self.detail = detail
        self.tls = tls


class TokenStatuses:
    """An azure-core raw_response_hook: the status of the last token-endpoint answer, per thread.

    azure-identity's errors often drop the HTTP status (MSAL's and IMDS's do), and without it an outage of
    Entra ID looks like a wrong identity."""

    def __init__(self) -> None:
        self._local = threading.local()

    def __call__(self, response: Any) -> None:
        url = str(getattr(response.http_request, "url", "")).split("?")[0]
        if url.endswith("/token"):  # not MSAL's discovery requests around it
            self._local.status = response.http_response.status_code

    def take(self) -> int | None:
        status: int | None = getattr(self._local, "status", None)
        self._local.status = None
        return status


class CachedCredential:
    """Wraps an azure-identity credential: one token request at a time, reuse until near expiry."""

    def __init__(self, inner: Any, statuses: TokenStatuses | None = None, proxy: ProxyRoute | None = None,
                 metrics: Metrics = METRICS, wait_seconds: float = TOKEN_WAIT_SECONDS) -> None:
        self._inner = inner
        self._metrics = metrics
        self._wait_seconds = wait_seconds
        self._statuses = statuses or TokenStatuses()
        self._proxy = proxy
        self._last_failure: int | None = None  # the status of the last failed token answer actually received
        self._lock = threading.Lock()
        self._tokens: dict[tuple[Hashable, ...], AccessTokenInfo] = {}

    def get_token_info(self, *scopes: str, options: TokenRequestOptions | None = None) -> AccessTokenInfo:
        opts = dict(options or {})
        if opts.get("claims"):  # a claims challenge always needs a fresh token
            return self._request(scopes, opts)
        key = (scopes, opts.get("tenant_id"), bool(opts.get("enable_cae")))
        # One request at a time per identity, so parallel mounts share one token; but never wait longer
        # for it than one token request may take.
        if not self._lock.acquire(timeout=self._wait_seconds):
            raise ProviderError(
                ErrorKind.UNAVAILABLE,
                f"another mount with the same Azure identity has waited over {self._wait_seconds:.0f}s for a "
                "token from Entra ID; the driver retries the mount",
            )
        try:
            cached = self._tokens.get(key)
            if cached is not None and _fresh(cached):
                self._metrics.cache_lookup(BACKEND, "token", "hit")
                return cached
            self._metrics.cache_lookup(BACKEND, "token", "miss")
            token = self._request(scopes, opts)
            self._tokens[key] = token
            return token
        finally:
            self._lock.release()

    def get_token(
        self, *scopes: str, claims: str | None = None, tenant_id: str | None = None, enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        options: TokenRequestOptions = {"enable_cae": enable_cae}
        if claims:
            options["claims"] = claims
        if tenant_id:
            options["tenant_id"] = tenant_id
        info = self.get_token_info(*scopes, options=options)
        return AccessToken(info.token, info.expires_on)

    def _request(self, scopes: tuple[str, ...], options: dict[str, Any]) -> AccessTokenInfo:
        started = time.monotonic()
        status = None
        self._statuses.take()
        try:
            token: AccessTokenInfo = self._inner.get_token_info(*scopes, options=options)
            status = 200
            self._last_failure = None
            return token
        except ClientAuthenticationError as exc:
            # MSAL replays a throttled (429/5xx, for Retry-After or 5 s) or refused answer without asking
            # again; such a replay means the same as the answer it repeats.
            received = self._statuses.take()
            self._last_failure = received or self._last_failure
            status = exc.status_code or self._last_failure
            if status in TRANSIENT_TOKEN_STATUSES:
                raise TokenServiceUnavailable(status) from exc
            raise
        except (ServiceRequestError, ServiceResponseError) as exc:
            if self._proxy is None:
                raise
            # Said here, where it is known to be the token request: to Key Vault's code it looks the same.
            raise TokenProxyUnreachable(self._proxy, transport_reason(exc), tls_refused(exc)) from exc
        finally:
            self._metrics.backend_request(BACKEND, "token", status, time.monotonic() - started)


def _fresh(token: AccessTokenInfo) -> bool:
    now = time.time()
    if token.refresh_on is not None and token.refresh_on <= now:
        return False
    return token.expires_on - now > REFRESH_MARGIN_SECONDS


class _Assertion:
    """The pod's current service-account token; each mount of the identity hands in its own, fresher one."""

    def __init__(self, token: str) -> None:
        self._lock = threading.Lock()
        self._token = token

    def update(self, token: str) -> None:
        with self._lock:
            self._token = token

    def __call__(self) -> str:
        with self._lock:
            return self._token


@dataclass
class _Entry(Generic[ClientsT]):
    credential: CachedCredential
    assertion: _Assertion | None
    clients: OrderedDict[str, ClientsT] = field(default_factory=OrderedDict)
    used: float = field(default_factory=time.monotonic)


def identity_key(identity: Identity, cloud: CloudEnvironment) -> tuple[str, ...]:
    if isinstance(identity, (WorkloadIdentity, IdentityBinding)):
        kind = "workload" if isinstance(identity, WorkloadIdentity) else "identity-binding"
        return (kind, cloud.authority_host, identity.tenant_id.lower(), identity.client_id.lower(),
                identity.namespace, identity.service_account)
    if isinstance(identity, ServicePrincipal):
        digest = hashlib.sha256(identity.client_secret.encode()).hexdigest()
        return ("service-principal", cloud.authority_host, identity.tenant_id.lower(),
                identity.client_id.lower(), digest)
    return ("managed", identity.client_id.lower())


def new_credential(identity: Identity, cloud: CloudEnvironment, route: ProxyRoute | None = None,
                   metrics: Metrics = METRICS) -> tuple[CachedCredential, _Assertion | None]:
    """The azure-identity credential for an identity, its authority taken from the mount's cloud."""
    authority = cloud.authority_host
    statuses = TokenStatuses()
    transport = {**IDENTITY_TRANSPORT, "raw_response_hook": statuses}
    if isinstance(identity, IdentityBinding):
        if route is None:
            raise ValueError("an identity-binding credential needs the token proxy's route")
        assertion = _Assertion(identity.token)
        inner: Any = ClientAssertionCredential(
            identity.tenant_id, identity.client_id, assertion, authority=authority,
            transport=proxy_transport(route), **transport,
        )
        return CachedCredential(inner, statuses, route, metrics), assertion
    if isinstance(identity, WorkloadIdentity):
        assertion = _Assertion(identity.token)
        inner = ClientAssertionCredential(
            identity.tenant_id, identity.client_id, assertion, authority=authority, **transport
        )
        return CachedCredential(inner, statuses, None, metrics), assertion
    if isinstance(identity, ServicePrincipal):
        inner = ClientSecretCredential(
            identity.tenant_id, identity.client_id, identity.client_secret, authority=authority,
            # MSAL asks login.microsoftonline.com about hosts it does not know; a custom cloud is one.
            disable_instance_discovery=cloud.is_custom, **transport,
        )
        return CachedCredential(inner, statuses, None, metrics), None
    assert isinstance(identity, ManagedIdentity)
    inner = ManagedIdentityCredential(client_id=identity.client_id or None, **transport)
    return CachedCredential(inner, statuses, None, metrics), None


def proxy_transport(route: ProxyRoute) -> Any:
    """azure-identity's own transport for the AKS token proxy (what WorkloadIdentityCredential builds with
    enable_azure_proxy=True from AZURE_KUBERNETES_* variables): it rewrites each request's origin to the
    proxy, sends the SNI name and trusts the CA file, which it re-reads when the file changes. Built here
    from the daemon's flags, per identity, because our assertion is the mount's token, not a token file,
    and process-wide variables would be one setting for every mount."""
    from azure.identity._internal.token_binding_transport_requests import CustomRequestsTransport

    return CustomRequestsTransport(
        sni=route.sni_name, proxy_endpoint=route.url, ca_file=route.ca_file,
        connection_timeout=IDENTITY_TRANSPORT["connection_timeout"], read_timeout=IDENTITY_TRANSPORT["read_timeout"],
        # In-cluster traffic: no HTTP(S)_PROXY, and no REQUESTS_CA_BUNDLE standing in for the cluster CA.
        use_env_settings=False,
    )


class IdentityCache(Generic[ClientsT]):
    """identity → credential and the Key Vault clients built on it; bounded, idle entries dropped."""

    def __init__(
        self,
        make_clients: Callable[[str, CachedCredential], ClientsT],
        max_entries: int = MAX_IDENTITIES,
        idle_seconds: float = IDLE_SECONDS,
        metrics: Metrics = METRICS,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self._make_clients = make_clients
        self._metrics = metrics
        self._now = now
        self._max = max_entries
        self._idle = idle_seconds
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[str, ...], _Entry[ClientsT]] = OrderedDict()

    def clients(self, identity: Identity, cloud: CloudEnvironment, vault: str, route: ProxyRoute | None = None,
                ) -> ClientsT:
        """`route`: where an identity-binding credential sends its token requests (unused by other modes)."""
        key = identity_key(identity, cloud)
        now = self._now()
        with self._lock:
            self._drop_idle(now)
            entry = self._entries.get(key)
            self._metrics.cache_lookup(BACKEND, "credential", "miss" if entry is None else "hit")
            if entry is None:
                log.debug("new Azure credential", extra={"fields": {
                    "mode": key[0], "tenant": identity.tenant_id, "clientID": identity.client_id,
                    "cloud": cloud.name, "identities": len(self._entries) + 1}})
                credential, assertion = new_credential(identity, cloud, route, self._metrics)
                entry = _Entry(credential, assertion, used=now)
                self._entries[key] = entry
                while len(self._entries) > self._max:
                    self._entries.popitem(last=False)
            self._entries.move_to_end(key)
            entry.used = now
            if entry.assertion is not None and isinstance(identity, PodIdentity):
                entry.assertion.update(identity.token)
            clients = entry.clients.get(vault)
            if clients is None:
                clients = entry.clients[vault] = self._make_clients(vault, entry.credential)
                while len(entry.clients) > MAX_VAULTS_PER_IDENTITY:
                    entry.clients.popitem(last=False)
            entry.clients.move_to_end(vault)
            return clients

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def _drop_idle(self, now: float) -> None:
        while self._entries:
            key, entry = next(iter(self._entries.items()))
            if now - entry.used <= self._idle:
                return
            del self._entries[key]
