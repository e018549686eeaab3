"""The files a backend returns → the MountResponse: the driver's path rules, ours, modes, versions, size.

Every output path passes through validate_path, which applies the driver's exact rules (contract §3.1)
so that nothing we return can be refused by the driver's writer or land outside the mount, plus ours:
no duplicate paths (the driver would keep the last silently) and no file/directory clash (`a` and `a/b`,
which the driver's writer fails on half-way).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from provider._proto import v1alpha1_pb2 as pb
from provider.errors import ErrorKind, ProviderError, echo, invalid

log = logging.getLogger(__name__)

MAX_PATH_BYTES = 4096
MAX_ELEMENT_BYTES = 255
MAX_MODE = 0o777
# The driver's default gRPC receive limit; past it the mount fails with an opaque gRPC error.
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
# Past this a Secret synced from the mount (secretObjects) exceeds Kubernetes' 1 MiB object limit.
SYNC_WARNING_BYTES = 1024 * 1024
MIN_VERSION_KEY_BYTES = 16


@dataclass(frozen=True)
class SecretFile:
    """One file of the volume, as a backend produces it.

    `object_spec` describes the object as the SPC asked for it (no secret material): it is hashed into
    the keyed version so that equal bytes of different objects get different versions. A backend whose
    store has versions of its own (Key Vault) sets `version`; otherwise the keyed HMAC is used.
    `mode` None means the request's default mode.
    """

    path: str
    contents: bytes = field(repr=False)
    object_id: str
    object_spec: str
    mode: int | None = None
    version: str | None = None


@dataclass(frozen=True)
class ObjectRecord:
    """What was mounted for one object id: for the audit trail and the `mount` table. No contents."""

    object_id: str
    version: str
    paths: tuple[str, ...]
    size: int


class VersionKey:
    """The HMAC key for object versions, shared by every node through a mounted Secret."""

    def __init__(self, key: bytes, source: str) -> None:
        if len(key) < MIN_VERSION_KEY_BYTES:
            raise ValueError(f"the version key from {source} is shorter than {MIN_VERSION_KEY_BYTES} bytes")
        self._key = key
        self.source = source

    @classmethod
    def from_file(cls, path: str) -> VersionKey:
        with open(path, "rb") as handle:
            return cls(handle.read().strip(), path)

    @classmethod
    def random(cls) -> VersionKey:
        return cls(secrets.token_bytes(32), "a random per-process key")

    def object_version(self, object_spec: str, files: Sequence[SecretFile]) -> str:
        """urlsafe base64 HMAC-SHA256 over the object's spec and each of its files' path and bytes."""
        mac = hmac.new(self._key, digestmod=hashlib.sha256)
        for part in (object_spec.encode(), *_path_and_contents(files)):
            mac.update(len(part).to_bytes(8, "big"))
            mac.update(part)
        return base64.urlsafe_b64encode(mac.digest()).decode()

    def __repr__(self) -> str:
        return f"VersionKey(source={self.source!r})"


def _path_and_contents(files: Sequence[SecretFile]) -> Iterable[bytes]:
    for item in files:
        yield item.path.encode()
        yield item.contents


def path_problem(path: str) -> str | None:
    """Why the driver (or its writer) would refuse this relative path; None when it is acceptable."""
    if path == "":
        return "is empty"
    if "\x00" in path:
        return "contains a NUL byte"
    if path.startswith("/"):
        return "is absolute"
    encoded = path.encode("utf-8", "surrogateescape")
    if len(encoded) > MAX_PATH_BYTES:
        return f"is longer than {MAX_PATH_BYTES} bytes"
    elements = path.split("/")
    if any(element == ".." for element in elements):
        return "has a '..' element"
    if any(len(element.encode("utf-8", "surrogateescape")) > MAX_ELEMENT_BYTES for element in elements):
        return f"has an element longer than {MAX_ELEMENT_BYTES} bytes"
    if elements[0].startswith("..") and len(elements[0]) > 2:
        return "starts with '..', which the driver reserves for its own ..data directories"
    if os.path.normpath(path) != path or path == ".":
        return "is not a clean path (no './', '//', trailing '/' or '.' elements)"
    return None


def validate_path(path: str, object_id: str) -> None:
    problem = path_problem(path)
    if problem is not None:
        raise invalid(f"object {echo(object_id)}: output path {echo(path)} {problem}")


def check_file_set(files: Sequence[SecretFile]) -> None:
    """Every path valid; no two files on one path; no file that is also another file's directory."""
    owners: dict[str, str] = {}
    for item in files:
        validate_path(item.path, item.object_id)
        if item.path in owners:
            raise invalid(
                f"objects {echo(owners[item.path])} and {echo(item.object_id)} both write the file {echo(item.path)}; "
                "give one of them another name or alias"
            )
        owners[item.path] = item.object_id
    for path, object_id in owners.items():
        parts = path.split("/")
        for depth in range(1, len(parts)):
            directory = "/".join(parts[:depth])
            if directory in owners:
                raise invalid(
                    f"object {echo(owners[directory])} writes the file {echo(directory)}, but object {echo(object_id)} "
                    f"needs {echo(directory)} to be a directory for {echo(path)}"
                )


def resolve_mode(item: SecretFile, default_mode: int) -> int:
    mode = default_mode if item.mode is None else item.mode
    if not 0 <= mode <= MAX_MODE:
        raise invalid(f"object {echo(item.object_id)}: file mode {mode:o} is outside 0..0777")
    return mode


def object_versions(files: Sequence[SecretFile], key: VersionKey) -> dict[str, str]:
    """One version per object id, in first-seen order."""
    grouped: dict[str, list[SecretFile]] = {}
    for item in files:
        grouped.setdefault(item.object_id, []).append(item)
    versions: dict[str, str] = {}
    for object_id, group in grouped.items():
        native = {item.version for item in group}
        if len(native) > 1 or len({item.object_spec for item in group}) > 1:
            raise ProviderError(
                ErrorKind.INTERNAL,
                f"object id {echo(object_id)} is given to files of different objects; this is a provider bug",
            )
        (version,) = native
        if version is None:
            version = key.object_version(group[0].object_spec, group)
        versions[object_id] = version
    return versions


def build_response(
    files: Sequence[SecretFile], default_mode: int, key: VersionKey
) -> tuple[pb.MountResponse, list[ObjectRecord]]:
    """Check the file set and turn it into the driver's MountResponse, plus what to audit."""
    if not files:
        raise invalid("the SecretProviderClass produced no files; list at least one object")
    check_file_set(files)
    versions = object_versions(files, key)
    response = pb.MountResponse(
        files=[pb.File(path=f.path, mode=resolve_mode(f, default_mode), contents=f.contents) for f in files],
        object_version=[pb.ObjectVersion(id=i, version=v) for i, v in versions.items()],
    )
    by_object: dict[str, list[SecretFile]] = {}
    for item in files:  # one pass: a thousand objects must not cost a million comparisons
        by_object.setdefault(item.object_id, []).append(item)
    records = [
        ObjectRecord(
            object_id=object_id,
            version=version,
            paths=tuple(f.path for f in by_object[object_id]),
            size=sum(len(f.contents) for f in by_object[object_id]),
        )
        for object_id, version in versions.items()
    ]
    check_size(response.ByteSize(), records)
    return response, records


def check_size(size: int, records: Sequence[ObjectRecord]) -> None:
    largest = sorted(records, key=lambda r: r.size, reverse=True)[:3]
    named = ", ".join(f"{echo(r.object_id)} ({r.size} bytes)" for r in largest)
    if size > MAX_RESPONSE_BYTES:
        raise ProviderError(
            ErrorKind.RESOURCE_EXHAUSTED,
            f"the mount would be {size} bytes, over the driver's {MAX_RESPONSE_BYTES}-byte limit; "
            f"largest objects: {named}",
        )
    if size > SYNC_WARNING_BYTES:
        log.warning(
            "mount is over 1 MiB: a synced Kubernetes Secret would exceed its size limit",
            extra={"fields": {"size": size, "largest": named}},
        )
