"""Log in to Vault as the requesting pod: its service-account JWT at `auth/<mount>/login` with the role.

The JWT is the driver's token for the SPC's audience (default key `vault`); without one, a token is
requested from the Kubernetes TokenRequest API, bound to the pod. There is no other identity: never the
daemon's own service account, never a VAULT_TOKEN from the environment. Kubernetes and JWT auth
mounts take the same login body, so both work.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Protocol

from provider.backends.vault.client import Answer, call
from provider.backends.vault.config import DEFAULT_AUDIENCE, VaultPlan
from provider.backends.vault.httpadapter import PooledAdapter
from provider.deadline import time_left
from provider.errors import ErrorKind, ProviderError
from provider.kube import IssuedToken, KubeError, KubeUnavailable
from provider.metrics import METRICS, Metrics

log = logging.getLogger(__name__)

TOKEN_REQUEST_TIMEOUT = 10.0


class TokenSource(Protocol):
    def request_token(self, namespace: str, service_account: str, pod_name: str, pod_uid: str,
                      audiences: list[str], timeout: float) -> IssuedToken: ...


@dataclass(frozen=True)
class Login:
    token: str = field(repr=False)
    ttl: float = 0.0
    renewable: bool = False


def who(plan: VaultPlan) -> str:
    return f"service account {plan.pod.namespace}/{plan.pod.service_account} (pod {plan.pod.name})"


def objects_named(plan: VaultPlan) -> str:
    names = [repr(o.name) for o in plan.objects]
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return f"object{'s' if len(names) > 1 else ''} {shown}"


def not_read(plan: VaultPlan) -> str:
    return f"{objects_named(plan)} {'were' if len(plan.objects) > 1 else 'was'} not read"


def pod_jwt(plan: VaultPlan, source: TokenSource | None, deadline: float) -> str:
    """The pod's JWT: the driver's token, else one from the TokenRequest API. Fails closed."""
    if plan.driver_token is not None:
        return plan.driver_token.token
    audience = plan.audience or DEFAULT_AUDIENCE
    advice = (f"add tokenRequests with audience {audience!r} to the CSIDriver secrets-store.csi.k8s.io "
              "(deploy/csidriver-patch.yaml)")
    if source is None:
        raise ProviderError(ErrorKind.UNAUTHENTICATED,
                            f"the mount request carries no service-account token for audience {audience!r}: {advice}")
    timeout = min(TOKEN_REQUEST_TIMEOUT, time_left(deadline, f"requesting a token for {who(plan)}"))
    try:
        issued = source.request_token(plan.pod.namespace, plan.pod.service_account, plan.pod.name, plan.pod.uid,
                                      [plan.audience] if plan.audience else [], timeout)
    except KubeUnavailable as exc:
        raise ProviderError(ErrorKind.UNAUTHENTICATED,
                            f"the mount request carries no service-account token for audience {audience!r}, and the "
                            f"provider cannot request one ({exc}): {advice}") from None
    except KubeError as exc:
        kind = ErrorKind.UNAVAILABLE if exc.status == 0 or exc.status >= 500 else ErrorKind.UNAUTHENTICATED
        raise ProviderError(kind,
                            f"the mount request carries no service-account token for audience {audience!r}, and the "
                            f"Kubernetes API did not issue one for {who(plan)}: {exc.message}. Either {advice}, or "
                            "let the provider create serviceaccounts/token (deploy/rbac-token-request.yaml)") from None
    log.info("requested a pod token from the TokenRequest API",
             extra={"fields": {"pod": plan.pod.name, "namespace": plan.pod.namespace, "audience": plan.audience}})
    return issued.token


def where(plan: VaultPlan) -> str:
    namespace = f" (namespace {plan.connection.namespace})" if plan.connection.namespace else ""
    return f"Vault at {plan.connection.address}{namespace}"


def login(adapter: PooledAdapter, plan: VaultPlan, jwt: str, deadline: float,
          metrics: Metrics = METRICS) -> Login:
    """POST auth/<mount>/login {role, jwt}; the error says which role, mount and service account."""
    what = f"logging in with role {plan.role!r} at auth/{plan.auth_mount} to read {objects_named(plan)}"
    answer = call(adapter, "POST", f"/v1/auth/{plan.auth_mount}/login", token="", deadline=deadline,
                  operation="login", what=what, where=where(plan),
                  body=json.dumps({"role": plan.role, "jwt": jwt}), metrics=metrics)
    auth = answer.body.get("auth") if isinstance(answer.body, dict) else None
    token = auth.get("client_token") if isinstance(auth, dict) else None
    if answer.status == 200 and isinstance(token, str) and token:
        ttl = float(str(auth.get("lease_duration") or 0)) if isinstance(auth, dict) else 0.0
        renewable = isinstance(auth, dict) and auth.get("renewable") is True
        log.info("logged in to Vault", extra={"fields": {
            "role": plan.role, "authMount": plan.auth_mount, "pod": plan.pod.name,
            "namespace": plan.pod.namespace, "serviceAccount": plan.pod.service_account, "ttlSeconds": ttl}})
        return Login(token=token, ttl=ttl, renewable=renewable)
    raise login_error(answer, plan)


def login_error(answer: Answer, plan: VaultPlan) -> ProviderError:
    if answer.sealed:
        return ProviderError(ErrorKind.UNAVAILABLE, f"{where(plan)} is sealed; {not_read(plan)}. "
                                                    "Unseal Vault; the driver retries the mount")
    audience = plan.audience or DEFAULT_AUDIENCE
    if answer.status in (400, 401, 403):
        # Vault answers a login to a path where no auth method is enabled with a bare "permission denied".
        mount_hint = (f", and that an auth method is enabled at auth/{plan.auth_mount} (vaultAuthMountPath or the "
                      "daemon's --vault-mount, in vaultNamespace)" if answer.errors == ["permission denied"] else "")
        return ProviderError(
            ErrorKind.UNAUTHENTICATED,
            f"{where(plan)} refused the login of {who(plan)} to role {plan.role!r} at auth/{plan.auth_mount}: "
            f"{answer.detail()}. Check that the role binds this service account and namespace and accepts "
            f"audience {audience!r}{mount_hint}; {not_read(plan)}",
        )
    if answer.status in (404, 405):
        return ProviderError(
            ErrorKind.UNAUTHENTICATED,
            f"{where(plan)} has no auth method at auth/{plan.auth_mount} ({answer.detail()}): check "
            f"vaultAuthMountPath (or the daemon's --vault-mount) and vaultNamespace; {not_read(plan)}",
        )
    if answer.status == 200 or answer.not_json:
        return ProviderError(ErrorKind.UNAVAILABLE,
                             f"{where(plan)} answered the login to role {plan.role!r} without a token; is "
                             f"vaultAddress a Vault server? {not_read(plan)}")
    return ProviderError(ErrorKind.UNAVAILABLE,
                         f"{where(plan)} could not log in {who(plan)} to role {plan.role!r} ({answer.detail()}); "
                         f"{not_read(plan)}; the driver retries the mount")
