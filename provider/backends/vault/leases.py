"""Lease-aware dynamic secrets: a pod gets the same leased credentials at every mount until two thirds of
their life has passed; renewable leases (and the tokens they hang on) are renewed then, and only when
that cannot extend them are new credentials read.

A response with a `lease_id` (database or RabbitMQ credentials, a PKI certificate from a role with
`generate_lease`) is kept for the pod that got it, keyed by the pod's login setting and uid and by
the request, never for another pod. Its life ends at the lease's end or at its token's, whichever
comes first: Vault revokes a token's leases with the token. There is no unmount call, so a gone
pod's leases are forgotten when they end, or earlier when the cache is full (least recently used).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

from provider.backends.vault.client import Answer, call
from provider.backends.vault.declaration import DECLARATION
from provider.backends.vault.httpadapter import PooledAdapter
from provider.backends.vault.tokens import TokenLife
from provider.backends.vault.values import CACHE_CHARS, KEPT_CHARS, kept_size
from provider.errors import ProviderError
from provider.metrics import METRICS, Metrics

log = logging.getLogger(__name__)

BACKEND = DECLARATION.name  # the metrics label
KEEP_SHARE = 2 / 3  # credentials are kept until this share of their term has passed
EXTEND_SHARE = 0.5  # a renewal must give at least this share of the first term, else new credentials
LAST_SECONDS = 2.0  # credentials this close to their end (or a tenth of a short term) are never handed out


@dataclass(eq=False)
class Lease:
    """Leased credentials of one pod for one request, and their life (time.monotonic())."""

    body: Mapping[str, Any] = field(repr=False)
    lease_id: str
    renewable: bool
    duration: float  # seconds Vault first granted: the increment asked for at renewal
    lease_end: float
    creator: TokenLife  # the token that read it: the lease ends with it
    term_start: float = field(default_factory=time.monotonic)
    first_term: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.first_term = self.first_term or max(0.0, self.end() - self.term_start)

    def end(self) -> float:
        return min(self.lease_end, self.creator.expires)

    def due(self, now: float) -> bool:
        """Two thirds of the current term have passed: time to renew, or to read new credentials."""
        return now >= self.term_start + KEEP_SHARE * (self.end() - self.term_start)

    def alive(self, now: float) -> bool:
        return now < self.end() - min(LAST_SECONDS, 0.1 * self.first_term)


def lease_of(body: Mapping[str, Any], creator: TokenLife, now: float | None = None) -> Lease | None:
    """The lease a read's answer carries, or None (KV answers have no lease_id, only a refresh hint)."""
    lease_id = body.get("lease_id")
    if not isinstance(lease_id, str) or not lease_id:
        return None
    try:
        seconds = float(str(body.get("lease_duration")))
    except ValueError:
        return None
    if seconds <= 0:
        return None
    now = time.monotonic() if now is None else now
    return Lease(body=body, lease_id=lease_id, renewable=body.get("renewable") is True, duration=seconds,
                 lease_end=now + seconds, creator=creator, term_start=now)


class LeaseCache:
    """Leases by (pod login setting, request), dropped when they end; at most `size` (LRU) and `chars` of them
    (credentials over KEPT_CHARS are not kept: the pod gets new ones at its next mount); size <= 0 disables."""

    def __init__(self, size: int, chars: int = CACHE_CHARS, metrics: Metrics = METRICS,
                 now: Callable[[], float] = time.monotonic) -> None:
        self.size = size
        self.chars = chars
        self.metrics = metrics
        self.now = now
        self._entries: OrderedDict[Hashable, Lease] = OrderedDict()
        self._sizes: dict[Hashable, int] = {}
        self._kept = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Lease | None:
        if self.size <= 0:
            return None
        now = self.now()
        with self._lock:
            lease = self._entries.get(key)
            if lease is not None and lease.alive(now):
                self._entries.move_to_end(key)
                return lease
            if lease is None:
                return None  # not counted: most reads (KV) never have a lease
            self._drop(key)
        self.metrics.cache_lookup(BACKEND, "lease", "expired")
        return None

    def put(self, key: Hashable, lease: Lease) -> None:
        if self.size <= 0:
            return
        size = kept_size(key, lease.body)
        if size > KEPT_CHARS:
            return
        now = self.now()
        with self._lock:
            self._drop(key)
            self._entries[key] = lease
            self._sizes[key] = size
            self._kept += size
            if len(self._entries) > self.size or self._kept > self.chars:  # ended leases first, then the LRU
                for ended in [k for k, v in self._entries.items() if not v.alive(now)]:
                    self._drop(ended)
            while len(self._entries) > self.size or self._kept > self.chars:
                self._drop(next(iter(self._entries)))

    def _drop(self, key: Hashable) -> None:
        if self._entries.pop(key, None) is not None:
            self._kept -= self._sizes.pop(key)

    def __len__(self) -> int:
        return len(self._entries)


def extend(lease: Lease, renew_token: Callable[[TokenLife], float | None],
           renew_lease: Callable[[Lease], float | None], metrics: Metrics = METRICS,
           now: Callable[[], float] = time.monotonic) -> bool:
    """Renew what ends first (the token, then the lease) if it can be; True when the credentials may be kept
    for another term. The callables return the seconds Vault granted, or None when it would not renew."""
    started = now()
    if lease.creator.expires <= lease.lease_end:
        granted = renew_token(lease.creator) if lease.creator.renewable else None
        if granted is not None:
            lease.creator.renewed(granted, now())
    if lease.lease_end < lease.creator.expires and lease.renewable and lease.lease_end - started < lease.duration:
        granted = renew_lease(lease)
        if granted is not None:
            lease.lease_end = now() + granted
    ended = now()
    if lease.end() - ended >= EXTEND_SHARE * lease.first_term and lease.alive(ended):
        lease.term_start = ended
        metrics.cache_lookup(BACKEND, "lease", "renewed")
        return True
    return False


def renew_token(adapter: PooledAdapter, life: TokenLife, deadline: float, where: str,
                metrics: Metrics = METRICS) -> float | None:
    """auth/token/renew-self for the token's first TTL; the TTL Vault granted, or None."""
    answer = _quietly(lambda: call(adapter, "POST", "/v1/auth/token/renew-self", token=life.token, deadline=deadline,
                                   operation="token_renew", what="renewing a Vault token that holds leases",
                                   where=where, body=json.dumps({"increment": f"{int(life.increment)}s"}),
                                   metrics=metrics))
    auth = answer.get("auth") if answer is not None else None
    return _seconds(auth.get("lease_duration")) if isinstance(auth, dict) else None


def renew_lease(adapter: PooledAdapter, lease: Lease, deadline: float, where: str,
                metrics: Metrics = METRICS) -> float | None:
    """sys/leases/renew for the lease's first duration, with the token that created it; granted seconds or None."""
    answer = _quietly(lambda: call(adapter, "PUT", "/v1/sys/leases/renew", token=lease.creator.token,
                                   deadline=deadline, operation="lease_renew", what="renewing a lease",
                                   where=where, body=json.dumps({"lease_id": lease.lease_id,
                                                                 "increment": int(lease.duration)}),
                                   metrics=metrics))
    return _seconds(answer.get("lease_duration")) if answer is not None else None


def _quietly(request: Callable[[], Answer]) -> Mapping[str, Any] | None:
    """The JSON of a 2xx answer, else None: a renewal that fails only means new credentials are read."""
    try:
        answer = request()
    except ProviderError as exc:
        log.info("renewal failed; new credentials will be read", extra={"fields": {"error": exc.message}})
        return None
    if 200 <= answer.status < 300 and isinstance(answer.body, dict):
        return answer.body
    log.info("Vault did not renew; new credentials will be read",
             extra={"fields": {"status": answer.status, "errors": answer.errors}})
    return None


def _seconds(value: Any) -> float | None:
    try:
        seconds = float(str(value))
    except ValueError:
        return None
    return seconds if seconds > 0 else None
