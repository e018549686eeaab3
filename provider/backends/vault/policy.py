"""Which Vault addresses an SPC may name, and whether it may skip their certificates: the Vault policy.

An SPC that names vaultAddress sends the pod's token there, so on a shared cluster the operator limits
the addresses with `--allowed-vault-addresses` (URL prefixes); the same list limits where a redirect
from Vault may lead (redirects.py). With a list, an SPC may not turn off the verification of the allowed
servers' certificates unless the operator also sets `--allow-vault-skip-tls-verify`. The files an SPC may
name are the core's policy (provider.policy), carried here for the Vault checks that read files.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from provider.errors import ErrorKind, ProviderError, invalid
from provider.plainurl import parse_plain_url
from provider.policy import FilesPolicy

Origin = tuple[str, str, int, str]  # scheme, host, port, path


def _origin_and_path(url: str) -> Origin | None:
    """Compared by the strict parser that also builds the URL dialled, so both read the same host;
    None for a URL that is not plain (user information, backslashes, dot segments...)."""
    try:
        parts = parse_plain_url(url.strip(), allow_query=True)
    except ValueError:
        return None
    return parts.scheme, parts.host, parts.effective_port, parts.path


def _under_a_prefix(wanted: Origin | None, prefixes: Iterable[Origin | None]) -> bool:
    if wanted is None:
        return False
    for allowed in prefixes:
        if allowed is None or allowed[:3] != wanted[:3]:
            continue
        if wanted[3] == allowed[3] or wanted[3].startswith(allowed[3] + "/"):
            return True
    return False


def address_allowed(address: str, prefixes: Sequence[str]) -> bool:
    """True when address has the scheme, host and port of a prefix and its path under the prefix's path.

    Compared by parts, not as text, so `https://vault.corp` does not admit `https://vault.corp.evil.example`.
    """
    return _under_a_prefix(_origin_and_path(address), map(_origin_and_path, prefixes))


@dataclass(frozen=True)
class VaultPolicy:
    """The operator's limits on what a Vault SPC may name; the defaults allow every address and no file."""

    allowed_addresses: tuple[str, ...] = ()
    # With an allowlist, an SPC may not turn off the verification of the allowed servers' certificates.
    allow_skip_tls_verify: bool = False
    files: FilesPolicy = field(default_factory=FilesPolicy)

    @classmethod
    def from_flags(cls, flag: Mapping[str, Any], files: FilesPolicy) -> VaultPolicy:
        """From the values of the declared policy flags (Declaration.flag_values)."""
        addresses = flag["allowed_vault_addresses"] or ""
        return cls(allowed_addresses=tuple(a.strip() for a in addresses.split(",") if a.strip()),
                   allow_skip_tls_verify=bool(flag["allow_vault_skip_tls_verify"]), files=files)

    @functools.cached_property
    def _prefixes(self) -> tuple[Origin | None, ...]:
        # Parsed once: every mount that names vaultAddress, and every redirect, is compared with them.
        return tuple(map(_origin_and_path, self.allowed_addresses))

    def allows_address(self, address: str) -> bool:
        """True when no list is set or the address is under one of its prefixes (as address_allowed)."""
        return not self.allowed_addresses or _under_a_prefix(_origin_and_path(address), self._prefixes)

    def check_address_allowed(self, address: str, source: str) -> None:
        if not self.allows_address(address):
            raise ProviderError(
                ErrorKind.PERMISSION_DENIED,
                f"{source} {address!r} is not allowed by this provider's --allowed-vault-addresses; "
                "use an allowed address or ask the cluster operator to add it",
            )

    def check_skip_tls_verify(self, parameter: str) -> None:
        """An SPC asks not to verify Vault's certificate: refused when the addresses are limited, since an
        allowed host name is only worth its certificate, unless the operator allows it."""
        if self.allowed_addresses and not self.allow_skip_tls_verify:
            raise invalid(f"{parameter} \"true\" is refused: this provider limits Vault addresses "
                          "(--allowed-vault-addresses), so it verifies their certificates; name the CA with "
                          "vaultCACertPath, or the operator can allow skipping with --allow-vault-skip-tls-verify")
