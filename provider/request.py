"""MountRequest → MountContext: what the driver sent, parsed, checked and typed.

The driver's encoding (contract §2): `attributes` is a JSON object of strings (SPC parameters, the pod's
volumeAttributes and kubelet's pod-info keys); `secrets` is `null`, `{}` or a JSON object of raw
strings; `permission` is a decimal JSON number such as "420"; service-account tokens arrive as a JSON
string inside `attributes` (and, from Kubernetes 1.35, inside `secrets`). Malformed input raises
INVALID_ARGUMENT naming the field, never echoing its value.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from provider.errors import echo, invalid
from provider.limits import DEFAULT_MODE, check_parameter_sizes, mode_in_range

POD_NAME = "csi.storage.k8s.io/pod.name"
POD_NAMESPACE = "csi.storage.k8s.io/pod.namespace"
POD_UID = "csi.storage.k8s.io/pod.uid"
SERVICE_ACCOUNT_NAME = "csi.storage.k8s.io/serviceAccount.name"
SERVICE_ACCOUNT_TOKENS = "csi.storage.k8s.io/serviceAccount.tokens"
EPHEMERAL = "csi.storage.k8s.io/ephemeral"
SPC_NAME = "secretProviderClass"
# Keys the driver or kubelet add that are not SPC parameters; backends ignore them.
DRIVER_KEY_PREFIX = "csi.storage.k8s.io/"
DRIVER_ADDED_KEYS = frozenset({SPC_NAME, "providerName"})


@dataclass(frozen=True)
class PodInfo:
    name: str
    namespace: str
    uid: str
    service_account: str


@dataclass(frozen=True)
class ServiceAccountToken:
    """A pod-bound service-account JWT for one audience. The token never shows in a repr."""

    audience: str
    token: str = field(repr=False)
    expiration: str = ""


@dataclass(frozen=True)
class MountContext:
    """Everything one Mount call carries, typed. Built only by parse_mount_request."""

    pod: PodInfo
    spc_name: str
    # SPC parameters and pod volumeAttributes, without the kubelet keys (those are in `pod`/`tokens`).
    parameters: Mapping[str, str]
    # nodePublishSecretRef data, raw strings, without the tokens key.
    secrets: Mapping[str, str] = field(repr=False)
    # Tokens by audience ("" is the API server's default audience); empty when the driver sent none.
    tokens: Mapping[str, ServiceAccountToken] = field(repr=False)
    default_mode: int
    target_path: str

    def token_for(self, audience: str) -> ServiceAccountToken | None:
        return self.tokens.get(audience)


def parse_mount_request(attributes: str, secrets: str, permission: str, target_path: str) -> MountContext:
    """Parse the four string fields of a MountRequest into a MountContext."""
    attrs = _string_map(attributes, "attributes", allow_null=False)
    secret_data = _string_map(secrets, "secrets", allow_null=True)
    tokens = _parse_tokens(attrs.get(SERVICE_ACCOUNT_TOKENS) or secret_data.get(SERVICE_ACCOUNT_TOKENS))
    parameters = {k: v for k, v in attrs.items() if not k.startswith(DRIVER_KEY_PREFIX)}
    check_parameter_sizes(parameters)
    secret_data.pop(SERVICE_ACCOUNT_TOKENS, None)
    return MountContext(
        pod=PodInfo(
            name=attrs.get(POD_NAME, ""),
            namespace=attrs.get(POD_NAMESPACE, ""),
            uid=attrs.get(POD_UID, ""),
            service_account=attrs.get(SERVICE_ACCOUNT_NAME, ""),
        ),
        spc_name=attrs.get(SPC_NAME, ""),
        parameters=MappingProxyType(parameters),
        secrets=MappingProxyType(secret_data),
        tokens=MappingProxyType(tokens),
        default_mode=parse_permission(permission),
        target_path=target_path,
    )


def parse_permission(permission: str) -> int:
    """The request's default file mode: a decimal JSON number ("420" is 0644). Empty means 0644."""
    if permission.strip() == "":
        return DEFAULT_MODE
    try:
        value = json.loads(permission)
    except (ValueError, RecursionError):
        raise invalid(
            "permission is not a decimal JSON number (the driver sends \"420\" for 0644)"
        ) from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid("permission must be a whole decimal number such as \"420\" (0644)")
    if not mode_in_range(value):
        raise invalid(f"permission {value} is outside the file mode range 0..511 (0..0777)")
    return value


def _string_map(raw: str, name: str, allow_null: bool) -> dict[str, str]:
    if raw.strip() == "":
        if allow_null:
            return {}
        raise invalid(f"{name} is empty: the driver always sends the SecretProviderClass parameters")
    try:
        value: Any = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise invalid(f"{name} is not valid JSON (error at line {exc.lineno} column {exc.colno})") from None
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser goes
        raise invalid(f"{name} is not valid JSON") from None
    if value is None and allow_null:
        return {}
    if not isinstance(value, dict):
        raise invalid(f"{name} must be a JSON object of strings, got {type(value).__name__}")
    for key, item in value.items():
        if not isinstance(item, str):
            raise invalid(f"{name}[{echo(key)}] must be a string, got {_json_type(item)}")
    return dict(value)


def _parse_tokens(raw: str | None) -> dict[str, ServiceAccountToken]:
    if not raw:
        return {}
    try:
        value: Any = json.loads(raw)
    except (ValueError, RecursionError):
        raise invalid(f"{SERVICE_ACCOUNT_TOKENS} is not valid JSON") from None
    if not isinstance(value, dict):
        raise invalid(f"{SERVICE_ACCOUNT_TOKENS} must be a JSON object keyed by audience")
    tokens: dict[str, ServiceAccountToken] = {}
    for audience, entry in value.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("token"), str):
            raise invalid(f"{SERVICE_ACCOUNT_TOKENS}[{echo(audience)}] must be an object with a string token")
        expiration = entry.get("expirationTimestamp", "")
        tokens[audience] = ServiceAccountToken(
            audience=audience,
            token=entry["token"],
            expiration=expiration if isinstance(expiration, str) else "",
        )
    return tokens


def _json_type(value: object) -> str:
    names = {bool: "boolean", int: "number", float: "number", list: "array", dict: "object"}
    return "null" if value is None else names.get(type(value), type(value).__name__)
