"""The local driver: what `secrets-store-csi-provider mount` uses, and what our end-to-end tests drive.

It does the driver's side of the contract without a cluster: builds the MountRequest exactly as the
Secrets Store CSI Driver v1.6 does (contract §2), calls the provider over its socket with the driver's
client settings, applies the driver's response checks (§3) and writes the files with kubelet's
atomic-writer layout (`..data` → a timestamped directory, one top-level symlink per first component).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import grpc

from provider._proto import v1alpha1_pb2 as pb
from provider._proto import v1alpha1_pb2_grpc as pb_grpc
from provider.gojson import go_json
from provider.limits import MAX_RESPONSE_BYTES
from provider.paths import path_problem
from provider.request import (
    EPHEMERAL,
    POD_NAME,
    POD_NAMESPACE,
    POD_UID,
    SERVICE_ACCOUNT_NAME,
    SERVICE_ACCOUNT_TOKENS,
    SPC_NAME,
)

DATA_DIR = "..data"
DEFAULT_TOKEN_LIFETIME = 600


class DriverRejection(Exception):
    """The driver would fail the mount with this message (its own checks, not the provider's error)."""


@dataclass(frozen=True)
class PodIdentity:
    name: str
    namespace: str
    uid: str
    service_account: str

    @classmethod
    def named(cls, name: str, namespace: str = "default", service_account: str = "default") -> PodIdentity:
        """A pod whose uid is derived from its name, so repeated local mounts look like one pod."""
        uid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"pod/{namespace}/{name}"))
        return cls(name=name, namespace=namespace, uid=uid, service_account=service_account)


def spc_parts(spc: Mapping[str, Any]) -> tuple[str, str, dict[str, str]]:
    """(name, provider, parameters) of a SecretProviderClass manifest, checked as the driver does."""
    if spc.get("kind") != "SecretProviderClass":
        raise DriverRejection(f"expected a SecretProviderClass manifest, got kind {spc.get('kind')!r}")
    name = str((spc.get("metadata") or {}).get("name") or "")
    spec = spc.get("spec") or {}
    provider = str(spec.get("provider") or "")
    parameters = spec.get("parameters") or {}
    if not provider:
        raise DriverRejection(f"secretproviderclass {name}: spec.provider is empty")
    if not parameters:
        raise DriverRejection(f"parameters not set in secretproviderclass {name}")
    for key, value in parameters.items():
        if not isinstance(value, str):
            raise DriverRejection(f"spec.parameters.{key} must be a string (quote it in the YAML)")
    return name, provider, dict(parameters)


def token_expiration(token: str) -> str:
    """The RFC 3339 expiry of a JWT, as kubelet reports it beside the token (now + 10 min if unreadable)."""
    expiry = time.time() + DEFAULT_TOKEN_LIFETIME
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        expiry = float(claims["exp"])
    except (IndexError, ValueError, KeyError, TypeError):
        pass
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expiry))


def build_mount_request(
    spc: Mapping[str, Any],
    pod: PodIdentity,
    tokens: Mapping[str, str] | None = None,
    secrets: Mapping[str, str] | None = None,
    permission: int = 0o644,
    volume_attributes: Mapping[str, str] | None = None,
    tokens_in_secrets: bool = False,
    volume_name: str = "secrets-store-inline",
) -> pb.MountRequest:
    """The MountRequest the driver sends for this SPC and pod (contract §2.1-2.5)."""
    spc_name, _, parameters = spc_parts(spc)
    attributes = dict(parameters)
    attributes.update(volume_attributes or {})
    attributes[SPC_NAME] = spc_name
    attributes.update(
        {
            POD_NAME: pod.name,
            POD_NAMESPACE: pod.namespace,
            POD_UID: pod.uid,
            SERVICE_ACCOUNT_NAME: pod.service_account,
            EPHEMERAL: "true",
        }
    )
    secret_data = dict(secrets or {})
    if tokens:
        encoded = go_json(
            {aud: {"token": tok, "expirationTimestamp": token_expiration(tok)} for aud, tok in tokens.items()}
        )
        attributes[SERVICE_ACCOUNT_TOKENS] = encoded
        if tokens_in_secrets:
            secret_data[SERVICE_ACCOUNT_TOKENS] = encoded
    return pb.MountRequest(
        attributes=go_json(attributes),
        secrets=go_json(secret_data) if secret_data else "null",
        target_path=f"/var/lib/kubelet/pods/{pod.uid}/volumes/kubernetes.io~csi/{volume_name}/mount",
        permission=str(permission),
    )


def call_mount(socket_path: str, request: pb.MountRequest, timeout: float = 120.0) -> pb.MountResponse:
    """One Mount call with the driver's client settings (authority localhost, 4 MiB receive limit)."""
    options = [
        ("grpc.default_authority", "localhost"),
        ("grpc.max_receive_message_length", MAX_RESPONSE_BYTES),
    ]
    with grpc.insecure_channel(f"unix:{socket_path}", options=options) as channel:
        response: pb.MountResponse = pb_grpc.CSIDriverProviderStub(channel).Mount(request, timeout=timeout)
        return response


def call_version(socket_path: str, timeout: float = 5.0) -> pb.VersionResponse:
    with grpc.insecure_channel(f"unix:{socket_path}", options=[("grpc.default_authority", "localhost")]) as channel:
        answer: pb.VersionResponse = pb_grpc.CSIDriverProviderStub(channel).Version(
            pb.VersionRequest(version="v1alpha1"), timeout=timeout
        )
        return answer


def check_response(response: pb.MountResponse) -> None:
    """The driver's checks on a successful MountResponse, in its order (contract §3)."""
    if response.error.code:
        raise DriverRejection(f"mount request failed with provider error code {response.error.code}")
    if not response.object_version:
        raise DriverRejection("missing object versions")
    for item in response.files:
        problem = path_problem(item.path)
        if problem is not None:
            raise DriverRejection(f"invalid file path {item.path!r}: {problem}")


def write_payload(target_dir: str, response: pb.MountResponse) -> bool:
    """Write the files as kubelet's atomic writer does; False when nothing changed (no rewrite)."""
    payload = {item.path: item for item in response.files}  # the driver keeps the last of a duplicate
    if not payload:
        return False  # the driver's legacy "provider wrote the files itself" case: nothing is written
    os.makedirs(target_dir, exist_ok=True)
    data_link = os.path.join(target_dir, DATA_DIR)
    old_dir = os.path.realpath(data_link) if os.path.islink(data_link) else None
    old_paths = set(mounted_files(target_dir)) if old_dir else set()
    if old_dir and old_paths == set(payload) and all(_same_bytes(old_dir, p, f.contents) for p, f in payload.items()):
        return False
    stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime())
    new_dir = tempfile.mkdtemp(prefix=stamp, dir=target_dir)
    os.chmod(new_dir, 0o755)
    for path, item in payload.items():
        full = os.path.join(new_dir, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as handle:
            handle.write(item.contents)
        os.chmod(full, item.mode)
    temp_link = os.path.join(target_dir, "..data_tmp")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temp_link)
    os.symlink(os.path.basename(new_dir), temp_link)
    os.rename(temp_link, data_link)
    new_tops = {path.split("/")[0] for path in payload}
    for top in new_tops:
        link = os.path.join(target_dir, top)
        if not os.path.islink(link):
            os.symlink(os.path.join(DATA_DIR, top), link)
    for top in {path.split("/")[0] for path in old_paths} - new_tops:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(target_dir, top))
    if old_dir and os.path.isdir(old_dir):
        shutil.rmtree(old_dir)
    return True


def mounted_files(target_dir: str) -> dict[str, str]:
    """Relative path → absolute path of the files a user sees (the driver's GetMountedFiles)."""
    found: dict[str, str] = {}
    for entry in sorted(os.listdir(target_dir)):
        if entry.startswith(".."):
            continue
        top = os.path.join(target_dir, entry)
        if os.path.isdir(top):
            for root, _, names in os.walk(top, followlinks=True):
                for name in names:
                    full = os.path.join(root, name)
                    found[os.path.relpath(full, target_dir)] = full
        else:
            found[entry] = top
    return found


def _same_bytes(directory: str, path: str, contents: bytes) -> bool:
    try:
        with open(os.path.join(directory, path), "rb") as handle:
            return handle.read() == contents
    except OSError:
        return False
