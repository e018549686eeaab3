"""Which files on the provider's disk an SPC may name: the policy every backend shares.

Anyone who can create a SecretProviderClass (or set pod volumeAttributes) in any namespace controls
every parameter we read. Left unchecked, an SPC can make the provider read a file from its own
filesystem (a CA bundle parameter naming a key file). Operators name the one directory SPC file
parameters may point into with `--allowed-files-dir`. What else an SPC may name (a backend's addresses,
its identities) is that backend's own policy, built in its package from the flags it declares
(`policy_flags`). Daemon flags themselves are trusted: they are the operator's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from provider.errors import ErrorKind, ProviderError, invalid

# The directory deploy/daemonset.yaml mounts (read-only, from an optional Secret or ConfigMap) and passes as
# --allowed-files-dir: where the official Vault provider's own SPCs keep their CA and client certificate.
DEPLOY_FILES_DIR = "/mnt/tls"


@dataclass(frozen=True)
class FilesPolicy:
    """The operator's limit on SPC-named files; the default allows none."""

    allowed_files_dir: str = ""
    # Set by `lint` run without --allowed-files-dir: the daemon's directory is unknown, so a file parameter
    # is a warning saying what the operator must allow; it is neither refused nor opened.
    files_dir_unknown: bool = False

    @classmethod
    def from_args(cls, args: object) -> FilesPolicy:
        allowed = getattr(args, "allowed_files_dir", "") or ""
        return cls(allowed_files_dir=allowed, files_dir_unknown=getattr(args, "command", "") == "lint" and not allowed)

    def unchecked_file(self, path: str, parameter: str) -> str | None:
        """lint's warning for a file parameter when the daemon's --allowed-files-dir is not known, else None."""
        if not self.files_dir_unknown or self.allowed_files_dir:
            return None
        where = os.path.dirname(path) if os.path.isabs(path) else "the directory that holds it"
        return (
            f"{parameter} names {path!r}, a file on the provider's disk: the daemon refuses it unless it runs "
            f"with --allowed-files-dir={where} (the shipped deploy/ mounts and allows {DEPLOY_FILES_DIR}); "
            "run lint with the daemon's --allowed-files-dir to check it"
        )

    def resolve_spc_file(self, path: str, parameter: str) -> str:
        """The real path of a file an SPC parameter names, if it lies under --allowed-files-dir."""
        if self.unchecked_file(path, parameter) is not None:
            return path  # lint only: reported as a warning by the backend's check
        if not self.allowed_files_dir:
            raise ProviderError(
                ErrorKind.PERMISSION_DENIED,
                f"{parameter} names a file on the provider's disk, which this provider does not allow from a "
                "SecretProviderClass; the operator can allow a directory with --allowed-files-dir",
            )
        if "\x00" in path:  # no file has such a name, and the path functions raise on it
            raise invalid(f"{parameter} contains a NUL byte; name a file under the directory set by "
                          "--allowed-files-dir")
        base = os.path.realpath(self.allowed_files_dir)
        real = os.path.realpath(os.path.join(base, path))
        if not under_directory(real, base):
            raise ProviderError(
                ErrorKind.PERMISSION_DENIED,
                f"{parameter} must name a file under the directory set by --allowed-files-dir "
                f"({self.allowed_files_dir}); put the file there, or ask the cluster operator to allow its directory",
            )
        return real


def under_directory(real_path: str, real_base: str) -> bool:
    """True when a resolved path is the resolved base or lies under it."""
    return os.path.commonpath([real_base, real_path]) == real_base


def add_policy_arguments(parser: object) -> None:
    """The core's policy flag; each backend declares its own (policy_flags), added to the same group."""
    add = parser.add_argument  # type: ignore[attr-defined]
    add("--allowed-files-dir", default="",
        help="the only directory whose files SPC parameters (CA, client cert/key, cloud env) may name")
