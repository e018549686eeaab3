"""Version history (`objectVersionHistory`): which versions, in which order, under which file names."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from provider.errors import ErrorKind, ProviderError

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class ListedVersion:
    version: str
    enabled: bool
    created: datetime | None


def select_versions(listed: Sequence[ListedVersion], start: str, count: int, what: str) -> list[str]:
    """The `count` newest enabled versions, starting at `start` ("" = the newest), newest first.

    Disabled versions are skipped; a version without a creation time sorts as the Unix epoch. Unlike the
    official provider this returns exactly `count` versions when there are more (not count + 1), and a
    starting version that is not among the enabled ones is an error instead of a mount without the files.
    """
    enabled = [item for item in listed if item.enabled and item.version]
    ordered = sorted(enabled, key=lambda item: item.created or EPOCH, reverse=True)
    versions = [item.version for item in ordered]
    if not versions:
        raise ProviderError(ErrorKind.NOT_FOUND, f"{what} has no enabled versions in Key Vault")
    first = 0
    if start:
        lowered = [v.lower() for v in versions]
        if start.lower() not in lowered:
            raise ProviderError(
                ErrorKind.NOT_FOUND,
                f"{what}: objectVersion {start!r} is not one of its enabled versions, so the history cannot "
                "start there; check objectVersion",
            )
        first = lowered.index(start.lower())
    return versions[first : first + count]


def version_from_id(identifier: str | None) -> str | None:
    """The last path segment of a Key Vault id (…/secrets/<name>/<version>); None when it has none."""
    if not identifier:
        return None
    parts = identifier.rstrip("/").split("/")
    # "https:", "", host, kind, name[, version]
    return parts[5] if len(parts) >= 6 and parts[5] else None
