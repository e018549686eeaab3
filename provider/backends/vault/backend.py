"""The Vault backend: plan (parameters and objects, no I/O) and fetch (log in as the pod, read, render).

One call per distinct request (path, query, method, secretArgs), the distinct calls in parallel within a
bound, so objects sharing a request share one answer: a dynamic role's username and password match, a
certificate and its key come from one issuance. Any failure fails the whole mount.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import Any

import hvac.adapters

from provider.backends.vault.auth import TokenSource, login, pod_jwt, where, who
from provider.backends.vault.client import Answer, call
from provider.backends.vault.config import Defaults, VaultPlan, check_plan, spc_label
from provider.backends.vault.files import object_files
from provider.backends.vault.objects import ReadRequest, VaultObject
from provider.backends.vault.tokens import TokenCache, TokenKey
from provider.backends.vault.transport import SessionCache
from provider.deadline import time_left
from provider.errors import ErrorKind, ProviderError
from provider.findings import Finding, Findings, warn_once
from provider.output import SecretFile
from provider.request import MountContext

log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 8


class VaultBackend:
    name = "vault"

    def __init__(self, defaults: Defaults, token_source: TokenSource | None = None, cache_size: int = 1000,
                 concurrency: int = DEFAULT_CONCURRENCY) -> None:
        self.defaults = defaults
        self.token_source = token_source
        self.tokens = TokenCache(cache_size)
        self.sessions = SessionCache()
        self.concurrency = max(1, concurrency)

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
        key = TokenKey(plan.connection.address, plan.connection.namespace, plan.auth_mount, plan.role,
                       plan.audience, plan.pod.namespace, plan.pod.service_account, plan.pod.uid)
        token, fresh = self._token(adapter, plan, key, deadline, failed=None)
        groups: dict[ReadRequest, list[VaultObject]] = {}
        for obj in plan.objects:
            groups.setdefault(obj.request, []).append(obj)
        answers = self._read_all(adapter, plan, key, token, fresh, groups, deadline)
        return [file for obj in plan.objects for file in object_files(obj, answers[obj.request])]

    def _token(self, adapter: hvac.adapters.RawAdapter, plan: VaultPlan, key: TokenKey, deadline: float,
               failed: str | None) -> tuple[str, bool]:
        """(token, fresh): the cached token, or a new login; with `failed`, a new one unless already replaced."""
        lock = self.tokens.lock_for(key)
        if not lock.acquire(timeout=time_left(deadline, f"waiting for the Vault login of {who(plan)}")):
            raise ProviderError(ErrorKind.DEADLINE_EXCEEDED, f"the mount deadline passed while another mount "
                                f"was logging in {who(plan)} to {where(plan)}; check that Vault answers in time")
        try:
            cached = self.tokens.get(key)
            if cached is not None and cached != failed:
                return cached, False
            result = login(adapter, plan, pod_jwt(plan, self.token_source, deadline), deadline)
            self.tokens.put(key, result.token, result.ttl)
            return result.token, True
        finally:
            lock.release()

    def _read_all(self, adapter: hvac.adapters.RawAdapter, plan: VaultPlan, key: TokenKey, token: str, fresh: bool,
                  groups: Mapping[ReadRequest, list[VaultObject]], deadline: float) -> dict[ReadRequest, Any]:
        if len(groups) == 1:
            ((request, objects),) = groups.items()
            return {request: self._read(adapter, plan, key, token, fresh, request, objects, deadline)}
        pool = ThreadPoolExecutor(max_workers=min(self.concurrency, len(groups)), thread_name_prefix="vault-read")
        try:
            futures: dict[ReadRequest, Future[Any]] = {
                request: pool.submit(self._read, adapter, plan, key, token, fresh, request, objects, deadline)
                for request, objects in groups.items()
            }
            done, pending = wait(futures.values(), timeout=time_left(deadline, "reading from Vault"),
                                 return_when=FIRST_EXCEPTION)
            for future in futures.values():  # the first failure in SPC order
                if future in done and future.exception() is not None:
                    raise future.exception()  # type: ignore[misc]
            if pending:
                raise ProviderError(ErrorKind.DEADLINE_EXCEEDED, f"the mount deadline passed before every object "
                                    f"was read from {where(plan)}; check that Vault answers in time")
            return {request: future.result() for request, future in futures.items()}
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def _read(self, adapter: hvac.adapters.RawAdapter, plan: VaultPlan, key: TokenKey, token: str, fresh: bool,
              request: ReadRequest, objects: list[VaultObject], deadline: float) -> Any:
        what = describe(objects)
        answer = self._call(adapter, plan, request, token, what, deadline)
        if answer.status == 403 and not fresh:
            # The cached token may have been revoked or have expired early: log in again, once.
            log.info("Vault refused a cached token; logging in again", extra={"fields": {"role": plan.role,
                     "pod": plan.pod.name, "namespace": plan.pod.namespace}})
            token, _ = self._token(adapter, plan, key, deadline, failed=token)
            answer = self._call(adapter, plan, request, token, what, deadline)
        body = check_read(answer, plan, request, what)
        if answer.warnings:
            log.warning("Vault answered with warnings", extra={"fields": {
                "objects": [o.name for o in objects], "path": request.path, "warnings": answer.warnings}})
        return body

    def _call(self, adapter: hvac.adapters.RawAdapter, plan: VaultPlan, request: ReadRequest, token: str, what: str,
              deadline: float) -> Answer:
        return call(adapter, request.method, request.path, token=token, deadline=deadline, operation="read",
                    what=f"reading {what}", where=where(plan), params=request.params, body=request.body)


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
