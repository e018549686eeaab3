"""The files a backend returned → what the mount answers: the driver's path rules and ours, modes, versions,
size. No wire format here: wire.py builds the MountResponse from what `assemble` checked.

Every output path passes through validate_path (paths.py), which applies the driver's exact rules
(contract §3.1) so that nothing we return can be refused by the driver's writer or land outside the
mount, plus ours: no duplicate paths (the driver would keep the last silently) and no file/directory
clash (`a` and `a/b`, which the driver's writer fails on half-way).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from provider.errors import ErrorKind, ProviderError, echo, invalid
from provider.files import ObjectRecord, SecretFile, VersionKey, files_by_object, object_records, object_versions
from provider.limits import MAX_RESPONSE_BYTES, SYNC_WARNING_BYTES, mode_in_range
from provider.paths import PathClaim, path_clashes, validate_path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Assembled:
    """A checked file set: each file with its mode, each object id with its version, what to audit."""

    files: tuple[tuple[SecretFile, int], ...]
    versions: dict[str, str]
    records: list[ObjectRecord]


def _validated(files: Sequence[SecretFile]) -> Iterator[PathClaim[str]]:
    for item in files:
        validate_path(item.path, item.object_id)
        yield PathClaim(item.path, item.object_id)


def check_file_set(files: Sequence[SecretFile]) -> None:
    """Every path valid; no two files on one path; no file that is also another file's directory."""
    for clash in path_clashes(_validated(files)):
        if clash.duplicate:
            raise invalid(
                f"objects {echo(clash.holder.owner)} and {echo(clash.claim.owner)} both write the file "
                f"{echo(clash.taken)}; give one of them another name or alias"
            )
        raise invalid(
            f"object {echo(clash.holder.owner)} writes the file {echo(clash.taken)}, but object "
            f"{echo(clash.claim.owner)} needs {echo(clash.taken)} to be a directory for {echo(clash.claim.path)}"
        )


def resolve_mode(item: SecretFile, default_mode: int) -> int:
    mode = default_mode if item.mode is None else item.mode
    if not mode_in_range(mode):
        raise invalid(f"object {echo(item.object_id)}: file mode {mode:o} is outside 0..0777")
    return mode


def assemble(files: Sequence[SecretFile], default_mode: int, key: VersionKey) -> Assembled:
    """Check the file set; each file's mode and each object's version."""
    if not files:
        raise invalid("the SecretProviderClass produced no files; list at least one object")
    check_file_set(files)
    grouped = files_by_object(files)
    versions = object_versions(grouped, key)
    moded = tuple((f, resolve_mode(f, default_mode)) for f in files)
    return Assembled(moded, versions, object_records(grouped, versions))


def check_size(size: int, records: Sequence[ObjectRecord]) -> None:
    """`size` is the encoded answer's: over the driver's limit fails, over a synced Secret's warns."""
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
