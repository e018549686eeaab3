"""What a backend returns for one mount: files, and the keyed versions of the objects they came from.

Pure values, no wire format: the server edge (wire.py) turns them into the driver's MountResponse.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from provider.errors import ErrorKind, ProviderError, echo

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


def files_by_object(files: Sequence[SecretFile]) -> dict[str, list[SecretFile]]:
    """The files of each object id, ids in first-seen order: one pass, however many objects."""
    grouped: dict[str, list[SecretFile]] = {}
    for item in files:
        grouped.setdefault(item.object_id, []).append(item)
    return grouped


def object_versions(grouped: Mapping[str, Sequence[SecretFile]], key: VersionKey) -> dict[str, str]:
    """One version per object id of `files_by_object`, in its order."""
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


def object_records(by_object: Mapping[str, Sequence[SecretFile]], versions: dict[str, str]) -> list[ObjectRecord]:
    """What was mounted for each object id of `files_by_object`, in the order of `versions`."""
    return [
        ObjectRecord(
            object_id=object_id,
            version=version,
            paths=tuple(f.path for f in by_object[object_id]),
            size=sum(len(f.contents) for f in by_object[object_id]),
        )
        for object_id, version in versions.items()
    ]
