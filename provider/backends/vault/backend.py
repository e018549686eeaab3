"""The Vault backend: plan (parameters and objects, no I/O) and fetch (log in as the pod, read, render).

One read per distinct request (path, query, method, secretArgs), the distinct reads in parallel within a
bound, so objects sharing a request share one answer: a dynamic role's username and password match, a
certificate and its key come from one issuance. Any failure fails the whole mount. What a read does
(leases, the value cache, singleflight, the login) is in reads.py.
"""

from __future__ import annotations

import difflib
import logging
import time
from collections.abc import Mapping
from typing import Any

from provider.backends.vault.auth import TokenSource, where
from provider.backends.vault.config import Defaults, VaultPlan, parse_plan
from provider.backends.vault.leases import LeaseCache
from provider.backends.vault.objects import FIELDS, HISTORIC, ReadRequest, VaultObject
from provider.backends.vault.reads import MountReads, ReadState
from provider.backends.vault.render import RenderError, render_object
from provider.backends.vault.tokens import POD, TokenCache
from provider.backends.vault.transport import SessionCache
from provider.backends.vault.unknown import nearest, warn_once
from provider.backends.vault.values import ValueCache
from provider.errors import ErrorKind, ProviderError
from provider.fanout import DeadlinePassed, FanOut
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
        self.sessions = SessionCache()
        self.concurrency = max(1, concurrency)
        self.reads = ReadState(tokens=self.tokens, leases=LeaseCache(lease_cache_size), values=ValueCache(cache_ttl),
                               token_scope=token_scope)
        self.fanout = FanOut(HELPERS_PER_READ * self.concurrency, "vault-read")

    def plan(self, ctx: MountContext) -> VaultPlan:
        plan = parse_plan(ctx, self.defaults)
        for obj in plan.objects:
            for name in obj.unknown_fields:
                suggestion = HISTORIC.get(name) or nearest(name, FIELDS)
                hint = f"; did you mean {suggestion!r}?" if suggestion else ""
                warn_once(plan.spc, f"object field {name}",
                          f"SecretProviderClass {plan.spc}: unknown field {name!r} of object {obj.name!r} is "
                          f"ignored{hint}", {"object": obj.name, "field": name, "suggestion": suggestion})
            if obj.encoding != "utf-8" and not obj.secret_key:
                warn_once(plan.spc, f"encoding {obj.name}", f"SecretProviderClass {plan.spc}: encoding of object "
                          f"{obj.name!r} is ignored: it has no secretKey, so the whole response is written",
                          {"object": obj.name})
        return plan

    def fetch(self, plan: VaultPlan, deadline: float) -> list[SecretFile]:
        reads = MountReads(self.reads, self.sessions.get(plan.connection), plan, deadline, self.token_source)
        groups: dict[ReadRequest, list[VaultObject]] = {}
        for obj in plan.objects:
            groups.setdefault(obj.request, []).append(obj)
        answers = self._read_all(reads, plan, groups, deadline)
        return [self._file(obj, answers[obj.request]) for obj in plan.objects]

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

    def _file(self, obj: VaultObject, body: Mapping[str, Any]) -> SecretFile:
        try:
            contents = render_object(body, obj.secret_key, obj.encoding)
        except KeyError:
            raise ProviderError(ErrorKind.NOT_FOUND, f"object {obj.name!r}: key {obj.secret_key!r} does not exist at "
                                f"secretPath {obj.secret_path!r}{key_hint(body, obj.secret_key)}") from None
        except RenderError as exc:
            raise ProviderError(ErrorKind.INVALID_ARGUMENT, f"object {obj.name!r} (secretPath {obj.secret_path!r}, "
                                f"secretKey {obj.secret_key!r}, encoding {obj.encoding}): {exc}") from None
        return SecretFile(path=obj.name, contents=contents, object_id=obj.name, object_spec=obj.spec, mode=obj.mode)


def key_hint(body: Mapping[str, Any], key: str) -> str:
    data = body.get("data")
    if not isinstance(data, Mapping):
        return ""
    source = data.get("data") if isinstance(data.get("data"), Mapping) else data
    guess = difflib.get_close_matches(key, [str(k) for k in source], n=1, cutoff=0.6)
    return f"; did you mean {guess[0]!r}?" if guess else ""
