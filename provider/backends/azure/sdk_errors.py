"""azure-core / azure-identity exceptions → ProviderError with a kind and a message a user can act on.

Messages keep the service's error code and its one-line explanation (Key Vault and Entra ID never put
credentials in them) and pass through the log redactor's shape filter all the same.
"""

from __future__ import annotations

import re
import socket

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.identity import CredentialUnavailableError

from provider.backends.azure.auth import TokenProxyUnreachable, TokenServiceUnavailable
from provider.backends.azure.config import (
    IDENTITY_BINDING_AUDIENCE,
    WORKLOAD_IDENTITY_AUDIENCE,
    Identity,
    IdentityBinding,
    ManagedIdentity,
    ServicePrincipal,
    WorkloadIdentity,
    identity_mode,
)
from provider.backends.azure.retry import RETRY_STATUSES
from provider.errors import ErrorKind, ProviderError, exception_chain
from provider.redaction import redact_text
from provider.retry import GaveUp, retry_after

_AADSTS = re.compile(r"AADSTS\d+:[^\r\n]*?(?:\.(?=\s|$)|$)", re.MULTILINE)
_FOREIGN_TENANT = re.compile(r"not configured to acquire tokens for tenant ([A-Za-z0-9.-]+)")
MAX_DETAIL = 300
_PERMISSION = {"get_secret": "secrets get", "get_key": "keys get", "get_certificate": "certificates get",
               "list_versions": "list"}


def transient(exc: BaseException) -> tuple[bool, float | None]:
    """For the core retry loop: throttling, server errors and dropped connections are worth a retry."""
    if isinstance(exc, ClientAuthenticationError):
        return False, None
    if isinstance(exc, HttpResponseError) and exc.status_code in RETRY_STATUSES:
        headers = getattr(exc.response, "headers", None) or {}
        return True, retry_after(headers)
    if isinstance(exc, (ServiceRequestError, ServiceResponseError)):
        return not unresolvable(exc), None
    return False, None


def unresolvable(exc: BaseException) -> bool:
    """True when the vault's host name does not resolve (a misspelt keyvaultName): not worth a retry."""
    return any(isinstance(e, socket.gaierror) or type(e).__name__ == "NameResolutionError"
               for e in exception_chain(exc))


def translate(exc: BaseException, what: str, operation: str, vault: str, identity: Identity) -> ProviderError:
    """The ProviderError for a failed Key Vault call about `what` (e.g. "object 0 (secret 'db')")."""
    gave_up = exc if isinstance(exc, GaveUp) else None
    cause = gave_up.cause if gave_up else exc
    if isinstance(cause, ProviderError):
        return cause
    if isinstance(cause, TokenProxyUnreachable):
        return _proxy_unreachable(cause, what)
    if isinstance(cause, TokenServiceUnavailable):
        service = "the node's managed identity endpoint (IMDS)" if isinstance(identity, ManagedIdentity) else "Entra ID"
        if isinstance(identity, IdentityBinding):
            service = "the AKS token proxy"
        return ProviderError(
            ErrorKind.UNAVAILABLE,
            f"{what}: {_mode(identity)} login to Entra ID failed: {service} answered HTTP {cause.status}, so it is "
            "down or throttling; the driver retries the mount",
        )
    if isinstance(cause, CredentialUnavailableError):
        return ProviderError(ErrorKind.UNAUTHENTICATED, f"{what}: {_identity_failure(cause, identity)}")
    if isinstance(cause, ClientAuthenticationError) and not _from_vault(cause, vault):
        return ProviderError(ErrorKind.UNAUTHENTICATED, f"{what}: {_identity_failure(cause, identity)}")
    if isinstance(cause, HttpResponseError) and cause.status_code is not None:
        return _http_failure(cause, what, operation, vault, gave_up)
    if isinstance(cause, (ServiceRequestError, ServiceResponseError)) and unresolvable(cause):
        return ProviderError(
            ErrorKind.UNAVAILABLE,
            f"{what}: the host name of Key Vault {vault} does not resolve; check keyvaultName, the cloud "
            "(cloudName) and the node's DNS",
        )
    if isinstance(cause, (ServiceRequestError, ServiceResponseError)):
        tries = f" after {gave_up.attempts} attempts" if gave_up else ""
        return ProviderError(
            ErrorKind.UNAVAILABLE,
            f"{what}: cannot reach Key Vault {vault}{tries} ({_short(cause)}); check keyvaultName, the cloud "
            "and the node's network and DNS",
        )
    if isinstance(cause, ValueError):
        # azure-keyvault raises ValueError when the vault's challenge does not match its host name.
        return ProviderError(ErrorKind.INVALID_ARGUMENT, f"{what}: Key Vault {vault}: {_short(cause)}")
    return ProviderError(ErrorKind.INTERNAL, f"{what}: unexpected {type(cause).__name__} from the Azure SDK")


def _proxy_unreachable(exc: TokenProxyUnreachable, what: str) -> ProviderError:
    route = exc.route
    detail = _clip(redact_text(exc.detail))
    if exc.tls:
        # The proxy is found by its SNI name and the cluster CA: a TLS failure is a setting, not an outage.
        return ProviderError(
            ErrorKind.UNAUTHENTICATED,
            f"{what}: identity binding: the TLS connection to the token proxy {route.url} with SNI name "
            f"{route.sni_name} failed ({detail}); check --sni-name (leave it unset to compute it from the API "
            f"server's certificate) and that --token-proxy-ca-file ({route.ca_file}) is the cluster's CA",
        )
    return ProviderError(
        ErrorKind.UNAVAILABLE,
        f"{what}: identity binding: cannot reach the token proxy {route.url} ({detail}); the driver retries the "
        "mount; check --token-proxy-url and the API server's availability",
    )


def _http_failure(
    exc: HttpResponseError, what: str, operation: str, vault: str, gave_up: GaveUp | None
) -> ProviderError:
    status = exc.status_code or 0
    code = _service_code(exc)
    detail = f"HTTP {status} {code}: {_service_message(exc)}".rstrip(": ")
    if status == 401:
        return ProviderError(
            ErrorKind.UNAUTHENTICATED,
            f"{what}: Key Vault {vault} did not accept the access token ({detail}); check tenantID and that "
            "the vault belongs to that tenant",
        )
    if status == 403:
        permission = _PERMISSION.get(operation, "get")
        return ProviderError(
            ErrorKind.PERMISSION_DENIED,
            f"{what}: Key Vault {vault} denied the identity ({detail}); grant it '{permission}' permission "
            "(access policy) or a Key Vault data role such as Key Vault Secrets User (RBAC), and check the "
            "vault's firewall and that the version is enabled",
        )
    if status == 404:
        return ProviderError(ErrorKind.NOT_FOUND, f"{what}: not found in Key Vault {vault} ({detail}); check "
                                                  "objectName, objectType and objectVersion")
    if status in RETRY_STATUSES:
        tries = f" after {gave_up.attempts} attempts" if gave_up else ""
        waited = ""
        if gave_up and gave_up.wait is not None and gave_up.past_deadline:
            waited = f"; it asked to wait {gave_up.wait:g}s, past the mount's deadline"
        throttled = " (throttled)" if status == 429 else ""
        return ProviderError(
            ErrorKind.UNAVAILABLE, f"{what}: Key Vault {vault} is unavailable{throttled}{tries} ({detail}){waited}"
        )
    if status in (400, 409):
        return ProviderError(ErrorKind.INVALID_ARGUMENT, f"{what}: Key Vault {vault} refused the request "
                                                         f"({detail}); check objectName and objectVersion")
    return ProviderError(ErrorKind.UNAVAILABLE, f"{what}: Key Vault {vault} answered {detail}")


def _identity_failure(exc: ClientAuthenticationError, identity: Identity) -> str:
    foreign = _FOREIGN_TENANT.search(str(exc.message or exc))
    if foreign:
        # azure-identity refuses a token for the tenant the vault's challenge names: another tenant's vault.
        return (f"the Key Vault belongs to tenant {foreign.group(1)}, not to tenantID {identity.tenant_id}; set "
                "tenantID to the vault's tenant")
    found = _AADSTS.search(str(exc.message or exc))
    reason = found.group(0).strip() if found else _short(exc)
    if isinstance(identity, WorkloadIdentity):
        hint = (
            f"check that client {identity.client_id} in tenant {identity.tenant_id} has a federated credential "
            "for the cluster's issuer with subject "
            f"system:serviceaccount:{identity.namespace}:{identity.service_account} and audience "
            f"{WORKLOAD_IDENTITY_AUDIENCE}"
        )
    elif isinstance(identity, IdentityBinding):
        hint = (
            f"check that an identity binding maps managed identity {identity.client_id} to this cluster, that "
            f"service account {identity.namespace}/{identity.service_account} may use it (a ClusterRole with "
            f"verb use-managed-identity on cid.wi.aks.azure.com, resource {identity.client_id}, bound to it), "
            f"and that the token's audience is {IDENTITY_BINDING_AUDIENCE}"
        )
    elif isinstance(identity, ServicePrincipal):
        hint = f"check clientid and clientsecret in the nodePublishSecretRef Secret and tenant {identity.tenant_id}"
    else:
        assert isinstance(identity, ManagedIdentity)
        which = f"user-assigned identity {identity.client_id}" if identity.client_id else "the system-assigned identity"
        hint = f"check that {which} is assigned to the node's VM or scale set"
    return f"{_mode(identity)} login to Entra ID failed: {_clip(redact_text(reason))}; {hint}"


def _mode(identity: Identity) -> str:
    """The identity mode in words ("workload identity"), for messages."""
    return identity_mode(identity).replace("-", " ")


def _from_vault(exc: HttpResponseError, vault: str) -> bool:
    response = exc.response
    request = getattr(response, "request", None)
    url = str(getattr(request, "url", "") or "")
    return url.lower().startswith(vault.lower().rstrip("/"))


def _service_code(exc: HttpResponseError) -> str:
    error = getattr(exc, "error", None)
    code = getattr(error, "code", None)
    inner_error = getattr(error, "innererror", None)
    inner = inner_error.get("code") if isinstance(inner_error, dict) else None
    if isinstance(inner, str) and inner and inner != code:
        return f"{code}/{inner}"
    return code if isinstance(code, str) else ""


def _service_message(exc: HttpResponseError) -> str:
    error = getattr(exc, "error", None)
    message = getattr(error, "message", None)
    if not isinstance(message, str) or not message:
        message = exc.reason or ""
    return _clip(redact_text(message))


def _short(exc: BaseException) -> str:
    text = str(getattr(exc, "message", None) or exc).splitlines()[0] if str(exc) else type(exc).__name__
    return _clip(redact_text(text))


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 3] + "..."
