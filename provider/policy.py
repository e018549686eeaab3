"""What an SPC author may point the provider at: backend addresses and files on the provider's disk.

Anyone who can create a SecretProviderClass (or set pod volumeAttributes) in any namespace controls
every parameter we read. Left unchecked, an SPC can send pod tokens to an address of its choosing or
make the provider read a file from its own filesystem (a CA bundle parameter naming a key file).
Operators narrow this with `--allowed-vault-addresses` (URL prefixes), `--allowed-files-dir` (the only
directory SPC file parameters may name) and `--deny-node-identity` (no SPC may use the node's identity).
Daemon flags themselves are trusted: they are the operator's.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from provider.errors import ErrorKind, ProviderError, invalid
from provider.plainurl import parse_plain_url

# The directory deploy/daemonset.yaml mounts (read-only, from an optional Secret or ConfigMap) and passes as
# --allowed-files-dir: where the official Vault provider's own SPCs keep their CA and client certificate.
DEPLOY_FILES_DIR = "/mnt/tls"


def _origin_and_path(url: str) -> tuple[str, str, int, str] | None:
    """Compared by the strict parser that also builds the URL dialled, so both read the same host;
    None for a URL that is not plain (user information, backslashes, dot segments...)."""
    try:
        parts = parse_plain_url(url.strip(), allow_query=True)
    except ValueError:
        return None
    return parts.scheme, parts.host, parts.effective_port, parts.path


def address_allowed(address: str, prefixes: Sequence[str]) -> bool:
    """True when address has the scheme, host and port of a prefix and its path under the prefix's path.

    Compared by parts, not as text, so `https://vault.corp` does not admit `https://vault.corp.evil.example`.
    """
    wanted = _origin_and_path(address)
    if wanted is None:
        return False
    for prefix in prefixes:
        allowed = _origin_and_path(prefix)
        if allowed is None or allowed[:3] != wanted[:3]:
            continue
        if wanted[3] == allowed[3] or wanted[3].startswith(allowed[3] + "/"):
            return True
    return False


@dataclass(frozen=True)
class EndpointPolicy:
    """The operator's limits; the defaults allow every address and no SPC-named file."""

    allowed_vault_addresses: tuple[str, ...] = ()
    allowed_files_dir: str = ""
    # Azure useVMManagedIdentity hands the SPC the node's identity: explicit in the SPC, as the official
    # provider allows, but an operator of a shared cluster can refuse it.
    allow_node_identity: bool = True
    # With an allowlist, an SPC may not turn off the verification of the allowed servers' certificates.
    allow_skip_tls_verify: bool = False
    # Set by `lint` run without --allowed-files-dir: the daemon's directory is unknown, so a file parameter
    # is a warning saying what the operator must allow; it is neither refused nor opened.
    files_dir_unknown: bool = False

    def check_vault_address(self, address: str, source: str) -> None:
        if self.allowed_vault_addresses and not address_allowed(address, self.allowed_vault_addresses):
            raise ProviderError(
                ErrorKind.PERMISSION_DENIED,
                f"{source} {address!r} is not allowed by this provider's --allowed-vault-addresses; "
                "use an allowed address or ask the cluster operator to add it",
            )

    def check_skip_tls_verify(self, parameter: str) -> None:
        """An SPC asks not to verify Vault's certificate: refused when the addresses are limited, since an
        allowed host name is only worth its certificate, unless the operator allows it."""
        if self.allowed_vault_addresses and not self.allow_skip_tls_verify:
            raise invalid(f"{parameter} \"true\" is refused: this provider limits Vault addresses "
                          "(--allowed-vault-addresses), so it verifies their certificates; name the CA with "
                          "vaultCACertPath, or the operator can allow skipping with --allow-vault-skip-tls-verify")

    def check_node_identity(self, parameter: str) -> None:
        if not self.allow_node_identity:
            raise ProviderError(
                ErrorKind.PERMISSION_DENIED,
                f"{parameter} asks for the node's managed identity, which this provider refuses "
                "(--deny-node-identity); use workload identity (clientID) instead",
            )

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


def policy_from_args(args: object) -> EndpointPolicy:
    addresses = getattr(args, "allowed_vault_addresses", "") or ""
    return EndpointPolicy(
        allowed_vault_addresses=tuple(a.strip() for a in addresses.split(",") if a.strip()),
        allowed_files_dir=getattr(args, "allowed_files_dir", "") or "",
        allow_node_identity=not getattr(args, "deny_node_identity", False),
        allow_skip_tls_verify=bool(getattr(args, "allow_vault_skip_tls_verify", False)),
        files_dir_unknown=getattr(args, "command", "") == "lint" and not getattr(args, "allowed_files_dir", ""),
    )
