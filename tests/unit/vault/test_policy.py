"""vault/policy.py: which Vault addresses an SPC may name, and whether it may skip their certificates."""

from __future__ import annotations

import argparse

import pytest

from provider.backends.vault import declaration
from provider.backends.vault.policy import VaultPolicy, address_allowed
from provider.errors import ErrorKind, ProviderError
from provider.policy import FilesPolicy

PREFIXES = ["https://vault.corp.example:8200", "https://vault.corp.example/team-a/", "http://127.0.0.1:8200"]


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("https://vault.corp.example:8200", True),
        ("https://vault.corp.example:8200/", True),
        ("https://VAULT.corp.example:8200", True),
        ("https://vault.corp.example", False),  # port 443 is only allowed under /team-a
        ("https://vault.corp.example/team-a", True),
        ("https://vault.corp.example/team-a/x", True),
        ("https://vault.corp.example/team-ab", False),
        ("https://vault.corp.example:443/team-a/x", True),
        ("https://vault.corp.example.evil.example:8200", False),
        ("https://evil.example/vault.corp.example:8200", False),
        ("https://vault.corp.example:8200@evil.example", False),
        ("http://vault.corp.example:8200", False),
        ("http://127.0.0.1:8200", True),
        ("http://127.0.0.1:8201", False),
        ("not a url", False),
        ("https://vault.corp.example:99999", False),
        ("", False),
        # Issue 13: what urlsplit and urllib3 read differently, and paths that leave the prefix.
        ("http://127.0.0.2:8201\\@127.0.0.1:8200", False),
        ("http://u:p@127.0.0.1:8200", False),
        ("https://vault.corp.example/team-a/../team-b", False),
        ("https://vault.corp.example/team-a/%2e%2e/team-b", False),
        ("https://vault.corp.example/team-a/%2E%2E/team-b", False),
        ("https://vault.corp.example/team-a/.%2e/team-b", False),
        ("https://vault.corp.example/team-a/./x", False),
        ("https://vault.corp.example/team-a/x?token=1", True),  # a redirect target's query is not its path
        ("http://127.0.0.1:8200 ", True),  # surrounding spaces are trimmed, as for every parameter
        ("http://127.0.0.1:8200/a\tb", False),
    ],
)
def test_address_prefixes(address: str, allowed: bool) -> None:
    assert address_allowed(address, PREFIXES) is allowed


def test_unset_policy_allows_any_address() -> None:
    VaultPolicy().check_address_allowed("https://anywhere.example", "vaultAddress")


def test_refused_address_names_the_flag() -> None:
    with pytest.raises(ProviderError) as caught:
        VaultPolicy(("https://vault.corp.example",)).check_address_allowed("https://evil.example", "vaultAddress")
    assert caught.value.kind is ErrorKind.PERMISSION_DENIED
    assert "--allowed-vault-addresses" in caught.value.message


@pytest.mark.parametrize(("flags", "addresses", "skip"), [
    ({}, (), False),
    ({"allowed_vault_addresses": " https://a.example , ,http://b.example:8200/x"},
     ("https://a.example", "http://b.example:8200/x"), False),
    ({"allowed_vault_addresses": "https://a.example", "allow_vault_skip_tls_verify": True},
     ("https://a.example",), True),
])
def test_the_policy_is_built_from_the_declared_flags(flags: dict[str, object], addresses: tuple[str, ...],
                                                     skip: bool) -> None:
    files = FilesPolicy("/mnt/tls")
    built = VaultPolicy.from_flags(declaration.flag_values(argparse.Namespace(**flags)), files)
    assert built == VaultPolicy(addresses, allow_skip_tls_verify=skip, files=files)
