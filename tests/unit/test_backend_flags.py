"""The backends' daemon flags check their values where they are declared: a wrong value stops the command
line (`serve`, `mount` and `lint` alike) with one argparse error naming the flag and what it accepts; every
value that was legal stays legal, and the defaults parse in every command."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from provider.backends import declarations
from provider.backends.azure.tokenproxy import DEFAULT_PROXY_URL
from provider.cli import build_parser
from provider.scalars import whole_number_from

# The leading arguments of each command that shares the backends' flags.
COMMANDS = {"serve": ["serve"], "mount": ["mount", "spc.yaml", "--target", "out"], "lint": ["lint", "spc.yaml"]}


@pytest.mark.parametrize(
    ("minimum", "text", "expected"),
    [
        (0, "0", 0),
        (0, "1000", 1000),
        (1, "1", 1),
        (1, " 8 ", 8),
        (0, "-1", "'-1' must be at least 0"),
        (1, "0", "'0' must be at least 1"),
        (1, "-3", "'-3' must be at least 1"),
        (1, "x", "'x' is not a whole number; it must be at least 1"),
        (0, "1.5", "'1.5' is not a whole number; it must be at least 0"),
        (0, "", "'' is not a whole number"),
    ],
)
def test_whole_numbers(minimum: int, text: str, expected: int | str) -> None:
    parse = whole_number_from(minimum)
    if isinstance(expected, int):
        assert parse(text) == expected
    else:
        with pytest.raises(argparse.ArgumentTypeError, match=expected):
            parse(text)


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_takes_the_declared_defaults(command: str) -> None:
    args = build_parser().parse_args(COMMANDS[command])
    expected = {"vault_cache_size": 1000, "vault_concurrency": 8, "vault_lease_cache_size": 1000, "cache_ttl": 0.0,
                "vault_token_scope": "pod", "construct_pem_chain": True, "write_cert_and_key_in_separate_files": False,
                "cloud_name": "AzurePublicCloud", "token_proxy_url": DEFAULT_PROXY_URL, "sni_name": ""}
    assert {dest: getattr(args, dest) for dest in expected} == expected
    for declaration in declarations():
        assert set(declaration.flag_values(args)) <= set(vars(args))


# Values legal before the checks, and what they parse to.
LEGAL: list[tuple[list[str], str, Any]] = [
    (["--vault-cache-size", "0"], "vault_cache_size", 0),  # 0 disables the token cache
    (["--vault-cache-size", "50000"], "vault_cache_size", 50000),
    (["--vault-lease-cache-size", "0"], "vault_lease_cache_size", 0),
    (["--vault-concurrency", "1"], "vault_concurrency", 1),
    (["--vault-concurrency", "64"], "vault_concurrency", 64),
    (["--cache-ttl", "0"], "cache_ttl", 0.0),
    (["--cache-ttl", "1m30s"], "cache_ttl", 90.0),
    (["--cache-ttl", "45"], "cache_ttl", 45.0),
    (["--vault-token-scope", "service-account"], "vault_token_scope", "service-account"),
    (["--construct-pem-chain", "false"], "construct_pem_chain", False),
    (["--construct-pem-chain=OFF"], "construct_pem_chain", False),
    (["--construct-pem-chain"], "construct_pem_chain", True),
    (["--write-cert-and-key-in-separate-files", "yes"], "write_cert_and_key_in_separate_files", True),
    (["--cloud-name", "azureusgovernmentcloud"], "cloud_name", "AzureUSGovernmentCloud"),
    (["--cloud-name", "AzureStackCloud"], "cloud_name", "AzureStackCloud"),
    (["--token-proxy-url", "https://10.0.0.1:443/proxy"], "token_proxy_url", "https://10.0.0.1:443/proxy"),
    (["--sni-name", "a1b2.ests.aks"], "sni_name", "a1b2.ests.aks"),
    (["--sni-name", " a1b2.ests.aks "], "sni_name", "a1b2.ests.aks"),
    (["--sni-name", ""], "sni_name", ""),
]


def _argv_id(value: object) -> str | None:
    return " ".join(value)[:40] if isinstance(value, list) else None


@pytest.mark.parametrize(("argv", "dest", "expected"), LEGAL, ids=_argv_id)
@pytest.mark.parametrize("command", list(COMMANDS))
def test_legal_values_stay_legal(command: str, argv: list[str], dest: str, expected: Any) -> None:
    assert getattr(build_parser().parse_args([*COMMANDS[command], *argv]), dest) == expected


# A wrong value, and the fragments of its one error line.
WRONG: list[tuple[list[str], tuple[str, ...]]] = [
    (["--vault-concurrency", "0"], ("argument --vault-concurrency: '0' must be at least 1",)),
    (["--vault-concurrency", "many"], ("argument --vault-concurrency: 'many' is not a whole number",)),
    (["--vault-cache-size", "-1"], ("argument --vault-cache-size: '-1' must be at least 0",)),
    (["--vault-lease-cache-size", "-5"], ("argument --vault-lease-cache-size: '-5' must be at least 0",)),
    (["--cache-ttl", "bogus"], ("argument --cache-ttl: 'bogus' is not a duration such as 30s, 2m or 1m30s",)),
    (["--cache-ttl=-5s"], ("argument --cache-ttl: '-5s' is negative; give a duration from 0",)),
    (["--cache-ttl", "9" * 400], ("argument --cache-ttl:", "is too long a duration")),
    (["--vault-token-scope", "node"], ("argument --vault-token-scope: invalid choice: 'node'",
                                       "'pod', 'service-account'")),
    (["--construct-pem-chain", "maybe"], ("argument --construct-pem-chain: 'maybe' is not true or false; use 1, "
                                          "on, t, true, yes or 0, f, false, no, off (any letter case)",)),
    (["--write-cert-and-key-in-separate-files=2"], ("argument --write-cert-and-key-in-separate-files: '2'",)),
    (["--cloud-name", "Nowhere"], ("argument --cloud-name: 'Nowhere' is not a cloud; use one of AzurePublicCloud, "
                                   "AzureUSGovernmentCloud, AzureChinaCloud, AzureGermanCloud, AzureStackCloud",)),
    (["--token-proxy-url", "http://proxy"], ("argument --token-proxy-url: 'http://proxy' must be an https:// URL",)),
    (["--token-proxy-url", "https://u:p@proxy"], ("argument --token-proxy-url:", "must not carry user information")),
    (["--sni-name", "proxy/aks"], ("argument --sni-name: 'proxy/aks' is not a DNS name", "leave it unset")),
    (["--sni-name", "10.0.0.1"], ("argument --sni-name: '10.0.0.1' is an IP address",)),
]


@pytest.mark.parametrize(("argv", "says"), WRONG, ids=_argv_id)
@pytest.mark.parametrize("command", list(COMMANDS))
def test_wrong_values_stop_the_command_line(command: str, argv: list[str], says: tuple[str, ...],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        build_parser().parse_args([*COMMANDS[command], *argv])
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    for fragment in says:
        assert fragment in error, error
