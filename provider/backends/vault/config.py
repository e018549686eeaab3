"""The Vault SPC parameters and daemon defaults → a checked VaultPlan, with no I/O.

Precedence is environment < daemon flags < SPC, field by field, except that a TLS pair (CA file and CA
directory; client certificate and key) comes whole from the last layer that sets either half, so two
layers never mix into a trust setting nobody wrote. `vaultSkipTLSVerify` can be switched off again by a
later layer (the official provider can only switch it on).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from provider.backends.vault.declaration import (
    ADDRESS,
    AUDIENCE,
    AUTH_MOUNT,
    CA_CERT,
    CA_DIRECTORY,
    CLIENT_CERT,
    CLIENT_KEY,
    DECLARATION,
    DEFAULT_ADDRESS,
    DEFAULT_AUDIENCE,
    DEFAULT_AUTH_MOUNT,
    KUBERNETES_MOUNT,
    NAMESPACE,
    OBJECTS,
    ROLE,
    SERVER_NAME,
    SKIP_VERIFY,
)
from provider.backends.vault.objects import VaultObject, check_objects
from provider.backends.vault.policy import VaultPolicy
from provider.contract import spc_label
from provider.errors import ErrorKind, ProviderError, invalid
from provider.findings import Findings, checked
from provider.plainurl import has_dot_segment, parse_plain_url, shown_url
from provider.policy import FilesPolicy
from provider.request import MountContext, PodInfo, ServiceAccountToken

# The environment variables the official provider's Vault client reads, by the parameter they default.
ENVIRONMENT = {
    ADDRESS: "VAULT_ADDR",
    NAMESPACE: "VAULT_NAMESPACE",
    CA_CERT: "VAULT_CACERT",
    CA_DIRECTORY: "VAULT_CAPATH",
    SERVER_NAME: "VAULT_TLS_SERVER_NAME",
    SKIP_VERIFY: "VAULT_SKIP_VERIFY",
    CLIENT_CERT: "VAULT_CLIENT_CERT",
    CLIENT_KEY: "VAULT_CLIENT_KEY",
}
_MOUNT_PATH = re.compile(r"^[A-Za-z0-9_.\-/]+$")


@dataclass(frozen=True)
class TLSSettings:
    ca_cert: str = ""
    ca_directory: str = ""
    server_name: str = ""
    skip_verify: bool = False
    client_cert: str = ""
    client_key: str = ""
    # When the SPC named the CA files or the client pair: the directory (--allowed-files-dir, resolved) every
    # file read for them must resolve under, checked again file by file as they are read; "" for the operator's.
    ca_root: str = ""
    client_root: str = ""


@dataclass(frozen=True)
class Connection:
    """Where Vault is and how to trust it: also the key of the HTTP session cache."""

    address: str
    namespace: str = ""
    tls: TLSSettings = TLSSettings()


@dataclass(frozen=True)
class Defaults:
    """The daemon's defaults (environment, then flags), as SPC parameter names → values, and the policy
    limiting what an SPC may name (the daemon's own settings are the operator's, so trusted)."""

    layers: tuple[Mapping[str, str], ...] = ()
    auth_mount: str = DEFAULT_AUTH_MOUNT
    policy: VaultPolicy = field(default_factory=VaultPolicy)


@dataclass(frozen=True)
class VaultPlan:
    """Everything one mount needs, checked; fetch does the I/O."""

    connection: Connection
    role: str
    auth_mount: str
    audience: str  # "" = not set: driver token "vault", self-minted token with the API default audience
    objects: tuple[VaultObject, ...]
    pod: PodInfo
    spc: str  # "<namespace>/<name>", for messages and logs
    driver_token: ServiceAccountToken | None = field(default=None, repr=False)
    identity_mode: ClassVar[str] = "service-account"  # the metric label and audit field: always the pod's own


def defaults_from(environ: Mapping[str, str], flags: Mapping[str, str | bool | None],
                  auth_mount: str = DEFAULT_AUTH_MOUNT, policy: VaultPolicy | None = None) -> Defaults:
    """The daemon's defaults; raises ValueError (at start-up) for a bad value, naming its source."""
    env_layer = {name: environ.get(var, "") for name, var in ENVIRONMENT.items()}
    flag_layer = {name: _flag_text(value) for name, value in flags.items()}
    for source, layer in (("environment", env_layer), ("flags", flag_layer)):
        try:
            _skip_verify(layer.get(SKIP_VERIFY, ""), source)
            _pair(layer, CLIENT_CERT, CLIENT_KEY, source, both_required=True)
            if layer.get(ADDRESS, "").strip():
                check_address(layer[ADDRESS].strip(), source)
        except ProviderError as exc:
            raise ValueError(exc.message) from None
    if mount_path_problem(auth_mount or ""):
        raise ValueError(f"--vault-mount {auth_mount!r} is not an auth mount path such as 'kubernetes' or 'jwt' "
                         f"({mount_path_problem(auth_mount or '')})")
    return Defaults(layers=(env_layer, flag_layer), auth_mount=auth_mount, policy=policy or VaultPolicy())


def _flag_text(value: str | bool | None) -> str:
    if value is None or value is False:
        return ""
    return "true" if value is True else str(value)


def parse_plan(ctx: MountContext, defaults: Defaults) -> VaultPlan:
    """Check the SPC parameters and objects of one mount against the daemon defaults. No I/O.

    Raises the first problem; `check_plan` has them all."""
    return checked(lambda findings: check_plan(ctx, defaults, findings))


def check_plan(ctx: MountContext, defaults: Defaults, findings: Findings) -> VaultPlan | None:
    """Every check of one mount, each problem recorded in `findings`; the plan when there is none."""
    params = ctx.parameters
    spc = spc_label(ctx)
    before = findings.error_count
    findings.attempt(lambda: require_pod_identity(ctx.pod, spc))
    role = params.get(ROLE, "").strip()
    if not role:
        findings.error(invalid(f"missing 'roleName' in SecretProviderClass {spc}: name the Vault role to log in with"))
    if AUTH_MOUNT in params and KUBERNETES_MOUNT in params:
        findings.error(invalid(f"SecretProviderClass {spc}: cannot set both vaultKubernetesMountPath and "
                               "vaultAuthMountPath; keep vaultAuthMountPath"))
    mount_parameter = next((name for name in (AUTH_MOUNT, KUBERNETES_MOUNT) if params.get(name)), AUTH_MOUNT)
    mount = (params.get(AUTH_MOUNT) or params.get(KUBERNETES_MOUNT) or defaults.auth_mount).strip()
    problem = mount_path_problem(mount)
    if problem:
        findings.error(invalid(f"SecretProviderClass {spc}: {mount_parameter} {shown_url(mount)!r} is "
                               f"not an auth mount path such as 'kubernetes' or 'jwt' ({problem})"))
    connection = findings.attempt(lambda: _connection(params, defaults, spc))
    for name in (CA_CERT, CA_DIRECTORY, CLIENT_CERT, CLIENT_KEY):
        path = params.get(name, "").strip()
        unchecked = defaults.policy.files.unchecked_file(path, name) if path else None
        if unchecked:
            findings.warn(unchecked, key=f"file:{name}")
    audience = params.get(AUDIENCE, "").strip()
    DECLARATION.unknown_parameters(params, findings)
    objects = check_objects(params.get(OBJECTS, ""), spc, findings)
    if findings.error_count > before or connection is None:
        return None
    return VaultPlan(
        connection=connection,
        role=role,
        auth_mount=mount.strip("/"),
        audience=audience,
        objects=objects,
        pod=ctx.pod,
        spc=spc,
        driver_token=ctx.token_for(audience or DEFAULT_AUDIENCE),
    )


def mount_path_problem(mount: str) -> str | None:
    """Why mount cannot be an auth mount path (it becomes /v1/auth/<mount>/login); None when it can."""
    if not _MOUNT_PATH.match(mount):
        return "use letters, digits, '_', '-', '.' and '/'"
    if has_dot_segment(mount):
        return "it has a '.' or '..' segment"
    return None


def _connection(params: Mapping[str, str], defaults: Defaults, spc: str) -> Connection:
    layers = (*defaults.layers, _spc_layer(params, defaults.policy, spc))
    address = check_address(_last(layers, ADDRESS) or DEFAULT_ADDRESS, f"SecretProviderClass {spc}")
    return Connection(address=address, namespace=_last(layers, NAMESPACE).strip("/"),
                      tls=_tls(layers, spc, defaults.policy.files))


def _spc_layer(params: Mapping[str, str], policy: VaultPolicy, spc: str) -> dict[str, str]:
    """The SPC's parameters, with its address and files checked against the operator's policy."""
    layer = dict(params)
    _pair(layer, CLIENT_CERT, CLIENT_KEY, f"SecretProviderClass {spc}", both_required=True)
    address = layer.get(ADDRESS, "").strip()
    if address:
        layer[ADDRESS] = check_address(address, f"SecretProviderClass {spc}")
        policy.check_address_allowed(layer[ADDRESS], f"SecretProviderClass {spc}: vaultAddress")
    if _skip_verify(layer.get(SKIP_VERIFY, ""), f"SecretProviderClass {spc}"):
        policy.check_skip_tls_verify(f"SecretProviderClass {spc}: vaultSkipTLSVerify")
    for name in (CA_CERT, CA_DIRECTORY, CLIENT_CERT, CLIENT_KEY):
        if layer.get(name, "").strip():
            layer[name] = policy.files.resolve_spc_file(layer[name].strip(), f"SecretProviderClass {spc}: {name}")
    return layer


def check_address(address: str, source: str) -> str:
    """The address rebuilt from its checked parts: a plain http(s)://host[:port][/path], or unix:///path (a
    Vault Agent socket). Only the rebuilt text is dialled, so the host checked is the host connected to."""
    if address.startswith("unix://"):
        socket_path = address[len("unix://"):]
        if not socket_path:
            raise invalid(f"{source}: vaultAddress {address!r} names no socket; use unix:///path/to/agent.sock")
        if any(c.isspace() or ord(c) < 32 or ord(c) == 127 or c in "?#" for c in socket_path):
            raise invalid(f"{source}: vaultAddress {shown_url(address)!r} is not a Vault URL such as "
                          "https://vault.vault:8200 or unix:///var/run/vault/agent.sock (the socket path has "
                          "whitespace, a control character, '?' or '#')")
        return address
    try:
        return parse_plain_url(address).text
    except ValueError as exc:
        raise invalid(f"{source}: vaultAddress {shown_url(address)!r} is not a Vault URL such as "
                      f"https://vault.vault:8200 or unix:///var/run/vault/agent.sock ({exc})") from None


def _last(layers: tuple[Mapping[str, str], ...], name: str) -> str:
    value = ""
    for layer in layers:
        value = layer.get(name, "").strip() or value
    return value


def _tls(layers: tuple[Mapping[str, str], ...], spc: str, files: FilesPolicy) -> TLSSettings:
    """The TLS settings from the layers, the SPC's last; files the SPC named are to stay under the real path
    of --allowed-files-dir (resolved only when the SPC names one: most mounts name none)."""
    ca_cert = ca_directory = client_cert = client_key = ca_root = client_root = ""
    skip = False
    sources = ("environment", "flags", f"SecretProviderClass {spc}")
    for index, (source, layer) in enumerate(zip(sources[-len(layers):], layers, strict=True)):
        spc_layer = index == len(layers) - 1
        root = os.path.realpath(files.allowed_files_dir) if spc_layer and files.allowed_files_dir and any(
            layer.get(name, "").strip() for name in (CA_CERT, CA_DIRECTORY, CLIENT_CERT, CLIENT_KEY)) else ""
        if layer.get(CA_CERT, "").strip() or layer.get(CA_DIRECTORY, "").strip():
            ca_cert, ca_directory = _pair(layer, CA_CERT, CA_DIRECTORY, source, both_required=False)
            ca_root = root
        if layer.get(CLIENT_CERT, "").strip() or layer.get(CLIENT_KEY, "").strip():
            client_cert, client_key = _pair(layer, CLIENT_CERT, CLIENT_KEY, source, both_required=True)
            client_root = root
        setting = _skip_verify(layer.get(SKIP_VERIFY, ""), source)
        skip = skip if setting is None else setting
    return TLSSettings(ca_cert=ca_cert, ca_directory=ca_directory, server_name=_last(layers, SERVER_NAME),
                       skip_verify=skip, client_cert=client_cert, client_key=client_key, ca_root=ca_root,
                       client_root=client_root)


def _pair(layer: Mapping[str, str], first: str, second: str, source: str, both_required: bool) -> tuple[str, str]:
    a, b = layer.get(first, "").strip(), layer.get(second, "").strip()
    if both_required and bool(a) != bool(b):
        raise invalid(f"{source}: both {first} and {second} must be set for a TLS client certificate, or neither")
    return a, b


def _skip_verify(value: str, source: str) -> bool | None:
    value = value.strip()
    if not value:
        return None
    setting = DECLARATION.parameter(SKIP_VERIFY).boolean(value)
    if setting is not None:
        return setting
    raise invalid(f"{source}: vaultSkipTLSVerify {value!r} is not a boolean; use \"true\" or \"false\"")


def pod_identity_problem(pod: PodInfo) -> str | None:
    missing = [n for n, v in (("pod.name", pod.name), ("pod.namespace", pod.namespace), ("pod.uid", pod.uid),
                              ("serviceAccount.name", pod.service_account)) if not v]
    return ", ".join(missing) or None


def require_pod_identity(pod: PodInfo, spc: str) -> None:
    problem = pod_identity_problem(pod)
    if problem:
        raise ProviderError(
            ErrorKind.INVALID_ARGUMENT,
            f"SecretProviderClass {spc}: the mount request has no {problem}; the CSIDriver needs "
            "podInfoOnMount: true so the provider can log in to Vault as the pod",
        )
