"""policy.py: which addresses and files an SPC may name."""

from __future__ import annotations

from pathlib import Path

import pytest

from provider.errors import ErrorKind, ProviderError
from provider.policy import EndpointPolicy, address_allowed

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
    EndpointPolicy().check_vault_address("https://anywhere.example", "vaultAddress")


def test_refused_address_names_the_flag() -> None:
    with pytest.raises(ProviderError) as caught:
        EndpointPolicy(("https://vault.corp.example",)).check_vault_address("https://evil.example", "vaultAddress")
    assert caught.value.kind is ErrorKind.PERMISSION_DENIED
    assert "--allowed-vault-addresses" in caught.value.message


def test_files_refused_without_an_allowed_dir() -> None:
    with pytest.raises(ProviderError) as caught:
        EndpointPolicy().resolve_spc_file("/etc/ssl/ca.pem", "vaultCACertPath")
    assert "--allowed-files-dir" in caught.value.message and "vaultCACertPath" in caught.value.message


@pytest.mark.parametrize("name", ["../outside.pem", "/etc/passwd", "sub/../../outside.pem", "link-out/x"])
def test_files_outside_the_dir_are_refused(tmp_path: Path, name: str) -> None:
    allowed = tmp_path / "allowed"
    (allowed / "sub").mkdir(parents=True)
    (tmp_path / "outside.pem").write_text("x")
    (allowed / "link-out").symlink_to(tmp_path)
    with pytest.raises(ProviderError) as caught:
        EndpointPolicy(allowed_files_dir=str(allowed)).resolve_spc_file(name, "vaultCACertPath")
    assert "--allowed-files-dir" in caught.value.message
    assert f"--allowed-files-dir ({allowed})" in caught.value.message  # the operator's directory, as set
    assert str(tmp_path) not in caught.value.message.replace(str(allowed), ""), "no other provider paths echoed"


@pytest.mark.parametrize("name", ["ca.pem", "sub/ca.pem"])
def test_files_inside_the_dir_resolve(tmp_path: Path, name: str) -> None:
    (tmp_path / "sub").mkdir()
    policy = EndpointPolicy(allowed_files_dir=str(tmp_path))
    assert policy.resolve_spc_file(name, "vaultCACertPath") == str((tmp_path / name).resolve())
    assert policy.resolve_spc_file(str(tmp_path / name), "p") == str((tmp_path / name).resolve())


def test_a_nul_byte_in_a_file_parameter_is_a_clean_refusal(tmp_path: Path) -> None:
    # Found by tests/fuzz/test_backend_plan_fuzz.py: os.path.realpath raised ValueError, which became INTERNAL.
    with pytest.raises(ProviderError) as caught:
        EndpointPolicy(allowed_files_dir=str(tmp_path)).resolve_spc_file("ca.pem\x00../x", "vaultCACertPath")
    assert caught.value.kind is ErrorKind.INVALID_ARGUMENT
    assert "vaultCACertPath" in caught.value.message and "NUL" in caught.value.message


def test_node_identity_is_allowed_unless_denied() -> None:
    EndpointPolicy().check_node_identity("useVMManagedIdentity")
    with pytest.raises(ProviderError) as caught:
        EndpointPolicy(allow_node_identity=False).check_node_identity("useVMManagedIdentity")
    assert caught.value.kind is ErrorKind.PERMISSION_DENIED
    assert "--deny-node-identity" in caught.value.message
