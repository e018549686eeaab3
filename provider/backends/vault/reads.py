"""The reads of one mount, as the pod: what is kept first, then one Vault call per distinct request.

For each distinct request of a mount, in this order:
1. the pod's lease for it (leases.py): the same credentials until two thirds of their life, then
   renewed, or new ones read;
2. with `--cache-ttl`, the identity's recent answer to the same GET or LIST (values.py);
3. the same identity's call for it already in flight (singleflight), else a call of its own.
The login happens only when a call is needed, so a mount answered from what is kept makes none. A
kept token that Vault refuses (403) is replaced by one new login, and the call made once more.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from provider.backends.vault.auth import TokenSource, login, pod_jwt, where, who
from provider.backends.vault.client import Answer, call
from provider.backends.vault.config import VaultPlan
from provider.backends.vault.declaration import DECLARATION, POD
from provider.backends.vault.httpadapter import PooledAdapter
from provider.backends.vault.leases import Lease, LeaseCache, extend, lease_of, renew_lease, renew_token
from provider.backends.vault.objects import ReadRequest, VaultObject
from provider.backends.vault.tokens import TokenCache, TokenKey, TokenLife
from provider.backends.vault.values import CACHEABLE_METHODS, ValueCache
from provider.deadline import time_left
from provider.errors import ErrorKind, ProviderError
from provider.metrics import METRICS, Metrics
from provider.singleflight import Flights, FlightTimeout

log = logging.getLogger(__name__)

BACKEND = DECLARATION.name  # the metrics label
# Kinds of failure for which a pod still gets its leased credentials while they are valid.
OUTAGE_KINDS = frozenset({ErrorKind.UNAVAILABLE, ErrorKind.DEADLINE_EXCEEDED})


@dataclass(frozen=True)
class Outcome:
    """A call's final answer, which pod made it, and with which token (a leased answer is that pod's)."""

    answer: Answer
    pod_uid: str
    creator: TokenLife


@dataclass
class ReadState:
    """What the backend keeps from one mount to the next for its reads."""

    tokens: TokenCache
    leases: LeaseCache
    values: ValueCache
    token_scope: str = POD
    metrics: Metrics = METRICS
    now: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self.flights: Flights[Outcome] = Flights()


class MountReads:
    """One mount's reads, as its pod; `read` may be called from several threads at once."""

    def __init__(self, state: ReadState, adapter: PooledAdapter, plan: VaultPlan, deadline: float,
                 token_source: TokenSource | None) -> None:
        self.state = state
        self.token_source = token_source
        self.adapter = adapter
        self.plan = plan
        self.deadline = deadline
        pod = plan.pod
        self.token_key = TokenKey(plan.connection.address, plan.connection.namespace, plan.auth_mount, plan.role,
                                  plan.audience, pod.namespace, pod.service_account,
                                  pod.uid if state.token_scope == POD else "")
        self.pod_key = self.token_key.for_pod(pod.uid)
        self._life: TokenLife | None = None
        self._fresh = False
        self._lock = threading.Lock()

    def read(self, request: ReadRequest, objects: list[VaultObject]) -> Mapping[str, Any]:
        """The JSON body of the request's answer; raises the error that names the objects, the request and why."""
        what = describe(objects)
        lease_key = (self.pod_key, request)
        lease = self.state.leases.get(lease_key)
        if lease is not None and self._keep(lease):
            return lease.body
        value_key = (self.token_key, request)
        cacheable = request.method in CACHEABLE_METHODS
        if cacheable and (kept := self.state.values.get(value_key)) is not None:
            return kept
        try:
            outcome = self._shared_call(request, what, cacheable)
            body = check_read(outcome.answer, self.plan, request, what)
        except ProviderError as exc:
            if lease is not None and exc.kind in OUTAGE_KINDS and lease.alive(self.state.now()):
                log.warning("Vault could not give new credentials; the pod keeps its leased ones while they are "
                            "valid", extra={"fields": {"objects": [o.name for o in objects], "error": exc.message}})
                return lease.body
            raise
        if outcome.answer.warnings:
            log.warning("Vault answered with warnings", extra={"fields": {
                "objects": [o.name for o in objects], "path": request.path, "warnings": outcome.answer.warnings}})
        new_lease = lease_of(body, outcome.creator, self.state.now())
        if new_lease is not None:
            self.state.leases.put(lease_key, new_lease)
        elif cacheable:
            self.state.values.put(value_key, body)
        return body

    def _keep(self, lease: Lease) -> bool:
        """True when the pod keeps its leased credentials: not yet due, being renewed by another mount, or renewed."""
        if not lease.due(self.state.now()):
            self.state.metrics.cache_lookup(BACKEND, "lease", "hit")
            return True
        if not lease.lock.acquire(blocking=False):
            return True  # another mount of this pod is renewing them; they are still valid meanwhile
        try:
            if not lease.due(self.state.now()):
                return True
            place = where(self.plan)
            metrics = self.state.metrics
            return extend(lease, lambda life: renew_token(self.adapter, life, self.deadline, place, metrics),
                          lambda held: renew_lease(self.adapter, held, self.deadline, place, metrics),
                          metrics, self.state.now)
        finally:
            lease.lock.release()

    def _shared_call(self, request: ReadRequest, what: str, cacheable: bool) -> Outcome:
        # A call that may create something (PUT, POST) is shared only within one pod.
        key = (self.token_key, request, "" if cacheable else self.plan.pod.uid)
        try:
            outcome, shared = self.state.flights.do(key, lambda: self._call(request, what),
                                                    time_left(self.deadline, f"reading {what}"))
        except FlightTimeout:
            raise ProviderError(ErrorKind.DEADLINE_EXCEEDED, f"the mount deadline passed while waiting for "
                                f"{where(self.plan)} to answer {request.describe()} for {what}; check that Vault "
                                "answers in time") from None
        if shared and outcome.pod_uid != self.plan.pod.uid and _leased(outcome.answer):
            return self._call(request, what)  # leased credentials are one pod's: this pod gets its own
        return outcome

    def _call(self, request: ReadRequest, what: str) -> Outcome:
        life, fresh = self._token(failed=None)
        answer = self._send(request, life.token, what)
        if answer.status == 403 and not fresh:
            # The kept token may have been revoked or have expired early: log in again, once.
            log.info("Vault refused a cached token; logging in again", extra={"fields": {
                "role": self.plan.role, "pod": self.plan.pod.name, "namespace": self.plan.pod.namespace}})
            life, _ = self._token(failed=life.token)
            answer = self._send(request, life.token, what)
        return Outcome(answer, self.plan.pod.uid, life)

    def _send(self, request: ReadRequest, token: str, what: str) -> Answer:
        return call(self.adapter, request.method, request.path, token=token, deadline=self.deadline,
                    operation="read", what=f"reading {what}", where=where(self.plan), params=request.params,
                    body=request.body, metrics=self.state.metrics)

    def _token(self, failed: str | None) -> tuple[TokenLife, bool]:
        """(token, fresh) for this mount: its token if it has one, else the kept one, else a new login; with
        `failed`, a new one unless another thread has already replaced it."""
        with self._lock:
            if self._life is None or self._life.token == failed:
                self._life, self._fresh = self._kept_or_login(failed)
            return self._life, self._fresh

    def _kept_or_login(self, failed: str | None) -> tuple[TokenLife, bool]:
        tokens, plan = self.state.tokens, self.plan
        lock = tokens.lock_for(self.token_key)
        if not lock.acquire(timeout=time_left(self.deadline, f"waiting for the Vault login of {who(plan)}")):
            raise ProviderError(ErrorKind.DEADLINE_EXCEEDED, f"the mount deadline passed while another mount "
                                f"was logging in {who(plan)} to {where(plan)}; check that Vault answers in time")
        try:
            kept = tokens.life(self.token_key)
            if kept is not None and kept.token != failed:
                return kept, False
            result = login(self.adapter, plan, pod_jwt(plan, self.token_source, self.deadline), self.deadline,
                           self.state.metrics)
            return tokens.put(self.token_key, result.token, result.ttl, result.renewable), True
        finally:
            lock.release()


def _leased(answer: Answer) -> bool:
    return isinstance(answer.body, dict) and bool(answer.body.get("lease_id"))


def describe(objects: list[VaultObject]) -> str:
    names = ", ".join(repr(o.name) for o in objects)
    return f"object{'s' if len(objects) > 1 else ''} {names} (secretPath {objects[0].secret_path!r})"


def check_read(answer: Answer, plan: VaultPlan, request: ReadRequest, what: str) -> Mapping[str, Any]:
    """The JSON body of a successful read, or the error that names the objects, the request and why."""
    call_text = request.describe()
    if 200 <= answer.status < 300 and not answer.not_json:
        if isinstance(answer.body, dict) and answer.body.get("data") is not None:
            return answer.body
        return _fail(ErrorKind.NOT_FOUND, f"{what}: {where(plan)} returned no data for {call_text}", answer)
    if answer.not_json:
        return _fail(ErrorKind.INVALID_ARGUMENT, f"{what}: {where(plan)} answered {call_text} with something that is "
                     "not JSON; raw endpoints such as pki/ca_chain are not supported (read pki/cert/ca_chain)", None)
    if answer.sealed:
        return _fail(ErrorKind.UNAVAILABLE, f"{where(plan)} is sealed; {what} was not read. Unseal Vault; the driver "
                     "retries the mount", None)
    if answer.status == 403:
        return _fail(ErrorKind.PERMISSION_DENIED, f"{what}: {where(plan)} denied {call_text} to role {plan.role!r} "
                     f"({who(plan)}); check that the role's policies allow it", answer)
    if answer.status == 404:
        return _fail(ErrorKind.NOT_FOUND, f"{what}: no secret at {call_text} in {where(plan)}; check secretPath "
                     "(a KV v2 path has /data/ after the mount, e.g. secret/data/app)", answer)
    if answer.status in (400, 405):
        return _fail(ErrorKind.INVALID_ARGUMENT, f"{what}: {where(plan)} refused {call_text}", answer)
    if answer.status == 401:
        return _fail(ErrorKind.UNAUTHENTICATED, f"{what}: {where(plan)} did not accept the token for {call_text}",
                     answer)
    return _fail(ErrorKind.UNAVAILABLE, f"{what}: {where(plan)} could not answer {call_text}; the driver retries "
                 "the mount", answer)


def _fail(kind: ErrorKind, message: str, answer: Answer | None) -> Mapping[str, Any]:
    raise ProviderError(kind, f"{message} ({answer.detail()})" if answer is not None else message)
