"""SPC parameters + the pod's identity → an AzurePlan: everything a mount needs, checked, without I/O.

(Reading a custom cloud's JSON file is the one local read; no request leaves the process here.)
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from provider.backends.azure.clouds import CloudEnvironment, resolve_cloud, vault_url
from provider.backends.azure.declaration import (
    CLIENT_ID_KEY,
    CLIENT_SECRET_KEY,
    DECLARATION,
    DEFAULT_CLOUD,
    IDENTITY_BINDING_AUDIENCE,
    IDENTITY_MODES,
    WORKLOAD_IDENTITY_AUDIENCE,
)
from provider.backends.azure.objects import KeyVaultObject, check_objects
from provider.backends.azure.policy import AzurePolicy
from provider.backends.azure.tokenproxy import TokenProxySettings
from provider.contract import Parameter
from provider.errors import ErrorKind, ProviderError, echo, invalid
from provider.findings import Findings, checked
from provider.paths import PathClaim, path_clashes
from provider.request import MountContext, PodInfo

_TENANT = re.compile(r"^[A-Za-z0-9.-]{1,256}$")
_CLIENT_ID = re.compile(r"^[A-Za-z0-9.-]{1,256}$")


@dataclass(frozen=True)
class AzureOptions:
    """The daemon's Azure flags."""

    construct_pem_chain: bool = True
    split_cert_and_key: bool = False
    default_cloud: str = DEFAULT_CLOUD
    policy: AzurePolicy = field(default_factory=AzurePolicy)
    token_proxy: TokenProxySettings = field(default_factory=TokenProxySettings)


@dataclass(frozen=True)
class WorkloadIdentity:
    """clientID + the pod's token for api://AzureADTokenExchange, exchanged as a client assertion."""

    tenant_id: str
    client_id: str
    namespace: str
    service_account: str
    token: str = field(repr=False)


@dataclass(frozen=True)
class IdentityBinding:
    """AKS identity binding (useAzureTokenProxy): clientID + the pod's token for api://AKSIdentityBinding,
    exchanged as a client assertion through the cluster's token proxy instead of at Entra ID directly."""

    tenant_id: str
    client_id: str
    namespace: str
    service_account: str
    token: str = field(repr=False)


@dataclass(frozen=True)
class ServicePrincipal:
    """clientid/clientsecret from the pod's nodePublishSecretRef Secret."""

    tenant_id: str
    client_id: str
    client_secret: str = field(repr=False)


@dataclass(frozen=True)
class ManagedIdentity:
    """The node's managed identity (useVMManagedIdentity); client_id "" is the system-assigned one."""

    tenant_id: str
    client_id: str


Identity = WorkloadIdentity | IdentityBinding | ServicePrincipal | ManagedIdentity
PodIdentity = WorkloadIdentity | IdentityBinding  # identities that carry the pod's own token


def identity_mode(identity: Identity) -> str:
    """The identity mode as a metric label and audit field: one of IDENTITY_MODES."""
    return _MODES[type(identity)]


_MODES: dict[type, str] = dict(zip((WorkloadIdentity, IdentityBinding, ServicePrincipal, ManagedIdentity),
                                   IDENTITY_MODES, strict=True))


@dataclass(frozen=True)
class PlannedObject:
    obj: KeyVaultObject
    object_id: str  # history mode: the prefix of <id>/<index>
    spec: str
    vault_url: str  # the object's keyvaultName's, else the SPC's


@dataclass(frozen=True)
class AzurePlan:
    pod: PodInfo
    vault_name: str
    vault_url: str
    cloud: CloudEnvironment
    identity: Identity
    objects: tuple[PlannedObject, ...]
    options: AzureOptions

    @property
    def identity_mode(self) -> str:
        return identity_mode(self.identity)


def parse_bool(value: str, parameter: Parameter) -> bool:
    """The parameter's declared booleans (Go's strconv.ParseBool unless it declares others, which SPCs
    written for the official provider rely on); "" is false."""
    text = value.strip()
    setting = parameter.boolean(text) if text else False
    if setting is not None:
        return setting
    raise invalid(f"failed to parse {parameter.name} flag: {echo(text)} is not true or false")


def build_plan(ctx: MountContext, options: AzureOptions) -> AzurePlan:
    """Check the whole request, in the official provider's order, and return what to fetch.

    Raises the first problem; `check_plan` has them all."""
    return checked(lambda findings: check_plan(ctx, options, findings))


def check_plan(ctx: MountContext, options: AzureOptions, findings: Findings) -> AzurePlan | None:
    """Every check of one mount, each problem recorded in `findings`; the plan when there is none."""
    before = findings.error_count
    if not ctx.pod.name:
        findings.error(invalid("pod name is not provided (the CSIDriver must have podInfoOnMount: true)"))
    if not ctx.pod.namespace:
        findings.error(invalid("pod namespace is not provided (the CSIDriver must have podInfoOnMount: true)"))
    params = {key: value.strip() for key, value in ctx.parameters.items()}
    use_pod_identity, use_vm_identity, use_token_proxy = (
        bool(findings.attempt(functools.partial(parse_bool, params.get(name, ""), DECLARATION.parameter(name))))
        for name in ("usePodIdentity", "useVMManagedIdentity", "useAzureTokenProxy")
    )
    if use_pod_identity + use_vm_identity + use_token_proxy > 1:
        findings.error(invalid(
            "only one identity mode can be enabled at a time: usePodIdentity, useVMManagedIdentity, or "
            "useAzureTokenProxy"
        ))
    vault_name = params.get("keyvaultName", "")
    if not vault_name:
        findings.error(invalid("keyvaultName is not provided: set it to the name of the Key Vault"))
    tenant_id = DECLARATION.parameter("tenantID").read(params)
    if not tenant_id:
        findings.error(invalid("tenantId is not provided: set tenantID to the Key Vault's Entra ID tenant"))
    elif not _TENANT.match(tenant_id):
        findings.error(invalid("tenantID must be a tenant GUID or domain name (letters, digits, '-' and '.')"))
    env_file = params.get("cloudEnvFileName", "").strip()
    unchecked = options.policy.files.unchecked_file(env_file, "cloudEnvFileName") if env_file else None
    if unchecked:
        findings.warn(unchecked, key="file:cloudEnvFileName")
    cloud = findings.attempt(lambda: resolve_cloud(
        params.get("cloudName", ""), params.get("cloudEnvFileName", ""), options.default_cloud, options.policy.files
    ))
    if use_pod_identity:
        findings.error(invalid(
            "usePodIdentity (aad-pod-identity) is retired and not supported: use workload identity instead: "
            f"set clientID, federate it with the pod's service account and add the audience "
            f"{WORKLOAD_IDENTITY_AUDIENCE} to the CSIDriver's tokenRequests"
        ))
    if use_vm_identity:
        findings.attempt(lambda: options.policy.check_node_identity("useVMManagedIdentity"))
    identity = findings.attempt(lambda: _identity(ctx, params, tenant_id, use_vm_identity, use_token_proxy))
    objects = check_objects(ctx.parameters.get("objects", ""), findings)
    url = findings.attempt(lambda: vault_url(vault_name, cloud)) if vault_name and cloud else None
    for obj, problem in path_problems(objects):
        findings.error(problem, obj.label)
    planned = plan_objects(objects, vault_name, url or "", cloud, findings) if cloud else []
    DECLARATION.unknown_parameters(ctx.parameters, findings)
    if findings.error_count > before or cloud is None or identity is None or url is None:
        return None
    return AzurePlan(
        pod=ctx.pod,
        vault_name=vault_name,
        vault_url=url,
        cloud=cloud,
        identity=identity,
        objects=tuple(planned),
        options=options,
    )


def _identity(ctx: MountContext, params: Mapping[str, str], tenant_id: str, use_vm: bool,
              use_token_proxy: bool = False) -> Identity:
    client_id = params.get("clientID", "")
    if use_token_proxy:
        return _identity_binding(ctx, client_id, tenant_id)
    if use_vm:
        user_assigned = params.get("userAssignedIdentityID", "")
        if user_assigned and not _CLIENT_ID.match(user_assigned):
            raise invalid("userAssignedIdentityID must be the client ID (a GUID) of a user-assigned identity")
        return ManagedIdentity(tenant_id=tenant_id, client_id=user_assigned)
    if client_id:
        if not _CLIENT_ID.match(client_id):
            raise invalid("clientID must be the client ID (a GUID) of the app or managed identity")
        token = ctx.token_for(WORKLOAD_IDENTITY_AUDIENCE)
        if token is None:
            sent = ", ".join(sorted(repr(aud) for aud in ctx.tokens)) or "none"
            raise ProviderError(
                ErrorKind.UNAUTHENTICATED,
                f"workload identity (clientID) needs the pod's service-account token for the audience "
                f"{WORKLOAD_IDENTITY_AUDIENCE}, and the driver sent no such token (audiences sent: {sent}); "
                f"add {{audience: {WORKLOAD_IDENTITY_AUDIENCE}}} to the CSIDriver's spec.tokenRequests",
            )
        return WorkloadIdentity(tenant_id, client_id, ctx.pod.namespace, ctx.pod.service_account, token.token)
    secrets = {key.lower(): value for key, value in ctx.secrets.items()}
    if not ctx.secrets:
        raise ProviderError(
            ErrorKind.UNAUTHENTICATED,
            "no identity to read Key Vault with: set clientID (workload identity), useVMManagedIdentity, "
            "or a nodePublishSecretRef Secret with clientid and clientsecret (nodePublishSecretRef secret "
            "is not set)",
        )
    for key in (CLIENT_ID_KEY, CLIENT_SECRET_KEY):
        if not secrets.get(key, "").strip():
            raise ProviderError(
                ErrorKind.UNAUTHENTICATED,
                f"could not find {key} in secrets: the nodePublishSecretRef Secret needs the keys clientid "
                "and clientsecret",
            )
    return ServicePrincipal(tenant_id, secrets[CLIENT_ID_KEY].strip(), secrets[CLIENT_SECRET_KEY].strip())


def _identity_binding(ctx: MountContext, client_id: str, tenant_id: str) -> IdentityBinding:
    """The official provider's three checks, in its order: clientID, any tokens, the binding audience's."""
    if not client_id:
        raise invalid(
            "clientID is required for identity binding (useAzureTokenProxy): set it to the client ID of the "
            "managed identity that the cluster's identity binding maps"
        )
    if not _CLIENT_ID.match(client_id):
        raise invalid("clientID must be the client ID (a GUID) of the app or managed identity")
    add = (f"add {{audience: {IDENTITY_BINDING_AUDIENCE}}} to the CSIDriver's spec.tokenRequests")
    if not ctx.tokens:
        raise ProviderError(
            ErrorKind.UNAUTHENTICATED,
            "service account tokens are required for identity binding (useAzureTokenProxy), and the driver "
            f"sent none; {add}",
        )
    token = ctx.token_for(IDENTITY_BINDING_AUDIENCE)
    if token is None:
        sent = ", ".join(sorted(repr(aud) for aud in ctx.tokens))
        raise ProviderError(
            ErrorKind.UNAUTHENTICATED,
            f"token for audience {IDENTITY_BINDING_AUDIENCE} not found: identity binding (useAzureTokenProxy) "
            f"exchanges the pod's service-account token for that audience (audiences sent: {sent}); {add}",
        )
    return IdentityBinding(tenant_id, client_id, ctx.pod.namespace, ctx.pod.service_account, token.token)


def path_problems(objects: list[KeyVaultObject]) -> list[tuple[KeyVaultObject, ProviderError]]:
    """Two objects on one path, or a file where another object needs a directory: found before any fetch.
    An object that keeps a history claims its file name as a directory of its own."""
    problems: list[tuple[KeyVaultObject, ProviderError]] = []
    for clash in path_clashes(PathClaim(o.file_name, o, directory=o.syncs_history) for o in objects):
        holder, obj, path = clash.holder.owner, clash.claim.owner, clash.claim.path
        if clash.duplicate:
            message = (f"{holder.describe()} and {obj.describe()} both write {echo(path)}; give one of them "
                       "another objectAlias")
        elif not clash.holder.directory:
            message = (f"{holder.describe()} writes the file {echo(holder.file_name)}, but {obj.describe()} needs it "
                       f"to be a directory for {echo(path)}")
        else:
            message = (f"{holder.describe()} keeps its version history in the directory {echo(holder.file_name)}, "
                       f"so {obj.describe()} cannot write {echo(path)} inside it")
        problems.append((obj, invalid(message)))
    return problems


def plan_objects(objects: list[KeyVaultObject], spc_vault: str, spc_url: str, cloud: CloudEnvironment,
                 findings: Findings) -> list[PlannedObject]:
    """Each object's vault and id. Ids are the official provider's (`<type>/<name>`), with the object's own
    vault in front only when it names one other than the SPC's (`<vault>/<type>/<name>`), and the alias
    appended only where two ids would clash (`<id>@<alias>`): every other SPC keeps the official ids."""
    located: list[tuple[KeyVaultObject, str, str]] = []
    for obj in objects:
        if obj.vault_name and obj.vault_name.lower() != spc_vault.lower():
            url = findings.attempt(functools.partial(_own_vault_url, obj, cloud), obj.label)
            located.append((obj, url or "", f"{obj.vault_name.lower()}/{obj.plain_id}"))
        else:
            located.append((obj, spc_url, obj.plain_id))
    counts = Counter((base_id, obj.syncs_history) for obj, _, base_id in located)
    planned = []
    for obj, url, base_id in located:
        clash = counts[(base_id, obj.syncs_history)] > 1
        object_id = f"{base_id}@{obj.file_name}" if clash else base_id
        planned.append(PlannedObject(obj=obj, object_id=object_id, spec=obj.spec(url), vault_url=url))
    return planned


def _own_vault_url(obj: KeyVaultObject, cloud: CloudEnvironment) -> str:
    try:
        return vault_url(obj.vault_name, cloud)
    except ProviderError as exc:
        raise invalid(f"{obj.describe()}: {exc.message}") from None
