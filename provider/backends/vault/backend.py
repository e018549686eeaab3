"""The Vault backend: plan (parameters and objects, no I/O) and fetch (log in as the pod, read, render).

One read per distinct request (path, query, method, secretArgs), the distinct reads in parallel within a
bound, so objects sharing a request share one answer: a dynamic role's username and password match, a
certificate and its key come from one issuance. Any failure fails the whole mount. What a read does
(leases, the value cache, singleflight, the login) is in reads.py.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from provider.backends.vault.auth import TokenSource, where
from provider.backends.vault.config import Defaults, VaultPlan, check_plan, spc_label
from provider.backends.vault.files import object_files
from provider.backends.vault.leases import LeaseCache
from provider.backends.vault.objects import ReadRequest, VaultObject
from provider.backends.vault.reads import MountReads, ReadState
from provider.backends.vault.tokens import POD, TokenCache
from provider.backends.vault.transport import SessionCache
from provider.backends.vault.values import ValueCache
from provider.errors import ErrorKind, ProviderError
from provider.fanout import DeadlinePassed, FanOut
from provider.findings import Finding, Findings, warn_once
from provider.output import SecretFile
from provider.request import MountContext

log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 8
# Threads that help mounts with their reads, for the whole process, per allowed read of one mount.
HELPERS_PER_READ = 4


class VaultBackend:
    name = "vault"

    def __init__(self, defaults: Defaults, token_source: TokenSource | None = None, cache_size: int = 1000,
                 concurrency: int = DEFAULT_CONCURRENCY, token_scope: str = POD, cache_ttl: float = 0.0,
                 lease_cache_size: int = 1000) -> None:
        self.defaults = defaults
        self.token_source = token_source
        self.tokens = TokenCache(cache_size)
        self.concurrency = max(1, concurrency)
        self.sessions = SessionCache(defaults.policy, self.concurrency)
        self.reads = ReadState(tokens=self.tokens, leases=LeaseCache(lease_cache_size), values=ValueCache(cache_ttl),
                               token_scope=token_scope)
        self.fanout = FanOut(HELPERS_PER_READ * self.concurrency, "vault-read")

    def plan(self, ctx: MountContext) -> VaultPlan:
        findings = Findings()
        plan = check_plan(ctx, self.defaults, findings)
        for warning in findings.warnings:
            warn_once(spc_label(ctx), warning.key, warning.message, warning.fields)
        findings.raise_first()
        assert plan is not None
        return plan

    def lint(self, ctx: MountContext) -> list[Finding]:
        """Every problem `plan` would find (it raises only the first), and every warning it would log."""
        findings = Findings()
        check_plan(ctx, self.defaults, findings)
        return findings.items

    def fetch(self, plan: VaultPlan, deadline: float) -> list[SecretFile]:
        adapter = self.sessions.get(plan.connection)
        reads = MountReads(self.reads, adapter, plan, deadline, self.token_source)
        groups: dict[ReadRequest, list[VaultObject]] = {}
        for obj in plan.objects:
            groups.setdefault(obj.request, []).append(obj)
        gate = adapter.pool.mounts
        if not gate.acquire(deadline - time.monotonic()):
            raise ProviderError(ErrorKind.DEADLINE_EXCEEDED, f"the mount deadline passed before every object "
                                f"was read from {where(plan)}; check that Vault answers in time")
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
            raise ProviderError(ErrorKind.DEADLINE_EXCEEDED, f"the mount deadline passed before every object "
                                f"was read from {where(plan)}; check that Vault answers in time") from None
        return {request: body for (request, _), body in zip(items, bodies, strict=True)}
