"""The Vault backend: plan (parameters and objects, no I/O) and fetch (log in as the pod, read, render).

One read per distinct request (path, query, method, secretArgs), the distinct reads in parallel within a
bound, so objects sharing a request share one answer: a dynamic role's username and password match, a
certificate and its key come from one issuance. Any failure fails the whole mount. What a read does
(leases, the value cache, singleflight, the login) is in reads.py.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from provider.backends.vault.auth import TokenSource, where
from provider.backends.vault.config import Defaults, VaultPlan, check_plan
from provider.backends.vault.declaration import DECLARATION, DEFAULT_CACHE_SIZE, DEFAULT_CONCURRENCY, POD
from provider.backends.vault.files import object_files
from provider.backends.vault.leases import LeaseCache
from provider.backends.vault.objects import ReadRequest, VaultObject
from provider.backends.vault.reads import MountReads, ReadState
from provider.backends.vault.tokens import TokenCache
from provider.backends.vault.transport import SessionCache
from provider.backends.vault.values import ValueCache
from provider.errors import ErrorKind, ProviderError
from provider.fanout import DeadlinePassed, FanOut
from provider.files import SecretFile
from provider.findings import Findings
from provider.metrics import METRICS, Metrics
from provider.request import MountContext

log = logging.getLogger(__name__)

# Threads that help mounts with their reads, for the whole process, per allowed read of one mount.
HELPERS_PER_READ = 4


class VaultBackend:
    """The contract's Backend[VaultPlan]."""

    declaration = DECLARATION

    def __init__(self, defaults: Defaults, token_source: TokenSource | None = None,
                 cache_size: int = DEFAULT_CACHE_SIZE, concurrency: int = DEFAULT_CONCURRENCY, token_scope: str = POD,
                 cache_ttl: float = 0.0, lease_cache_size: int = DEFAULT_CACHE_SIZE, metrics: Metrics = METRICS,
                 now: Callable[[], float] = time.monotonic) -> None:
        self.defaults = defaults
        self.token_source = token_source
        self.tokens = TokenCache(cache_size, metrics, now)
        self.concurrency = max(1, concurrency)
        self.sessions = SessionCache(defaults.policy, self.concurrency)
        self.reads = ReadState(tokens=self.tokens, leases=LeaseCache(lease_cache_size, metrics=metrics, now=now),
                               values=ValueCache(cache_ttl, metrics=metrics, now=now), token_scope=token_scope,
                               metrics=metrics, now=now)
        self.fanout = FanOut(HELPERS_PER_READ * self.concurrency, "vault-read")

    def check(self, ctx: MountContext, findings: Findings) -> VaultPlan | None:
        return check_plan(ctx, self.defaults, findings)

    def fetch(self, plan: VaultPlan, deadline: float) -> list[SecretFile]:
        adapter = self.sessions.get(plan.connection)
        reads = MountReads(self.reads, adapter, plan, deadline, self.token_source)
        groups: dict[ReadRequest, list[VaultObject]] = {}
        for obj in plan.objects:
            groups.setdefault(obj.request, []).append(obj)
        gate = adapter.pool.mounts
        if not gate.acquire(deadline - time.monotonic()):
            raise _unread_at_deadline(plan)
        try:
            answers = self._read_all(reads, plan, groups, deadline)
        finally:
            gate.release()
        return [file for obj in plan.objects for file in object_files(obj, answers[obj.request])]

    def _read_all(self, reads: MountReads, plan: VaultPlan, groups: Mapping[ReadRequest, list[VaultObject]],
                  deadline: float) -> dict[ReadRequest, Any]:
        items = list(groups.items())
        try:
            bodies = self.fanout.run(lambda item: reads.read(*item), items, self.concurrency,
                                     lambda: deadline - time.monotonic())
        except DeadlinePassed:
            raise _unread_at_deadline(plan) from None
        return {request: body for (request, _), body in zip(items, bodies, strict=True)}


def _unread_at_deadline(plan: VaultPlan) -> ProviderError:
    """The mount's deadline came before every read was answered (or could start)."""
    return ProviderError(ErrorKind.DEADLINE_EXCEEDED, f"the mount deadline passed before every object was read "
                         f"from {where(plan)}; check that Vault answers in time")
