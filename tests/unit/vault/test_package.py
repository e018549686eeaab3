"""The package's surface: flags, the factory, and no hvac import until a Vault backend is created."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from provider.backends.vault import create, declaration

PROBE = """
import argparse, sys
import provider.backends.vault as vault
import provider.backends.vault.config, provider.backends.vault.objects, provider.backends.vault.render
vault.declaration.add_flags(argparse.ArgumentParser())
before = sorted(m for m in ("hvac", "requests") if m in sys.modules)
vault.create(argparse.Namespace())
after = sorted(m for m in ("hvac", "requests") if m in sys.modules)
print(before, after)
"""


def test_hvac_loads_only_when_the_backend_is_created() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.strip() == "[] ['hvac', 'requests']"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], {"vault_mount": "kubernetes", "vault_addr": None, "vault_tls_skip_verify": None,
              "vault_cache_size": 1000, "vault_concurrency": 8}),
        (["--vault-addr", "https://vault:8200", "--vault-mount", "jwt", "--vault-tls-skip-verify",
          "--vault-cache-size", "0"],
         {"vault_mount": "jwt", "vault_addr": "https://vault:8200", "vault_tls_skip_verify": True,
          "vault_cache_size": 0, "vault_concurrency": 8}),
    ],
)
def test_flags(argv: list[str], expected: dict[str, object]) -> None:
    parser = argparse.ArgumentParser()
    declaration.add_flags(parser)
    args = vars(parser.parse_args(argv))
    assert {k: args[k] for k in expected} == expected


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--vault-addr", "vault:8200"], "is not a Vault URL"),
        (["--vault-tls-client-cert", "/c.pem"], "both vaultTLSClientCertPath and vaultTLSClientKeyPath"),
        (["--vault-mount", "a b"], "--vault-mount 'a b' is not an auth mount path"),
    ],
)
def test_bad_flags_stop_the_daemon_at_start(argv: list[str], message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VAULT_ADDR", raising=False)
    parser = argparse.ArgumentParser()
    declaration.add_flags(parser)
    with pytest.raises(SystemExit) as caught:
        create(parser.parse_args(argv))
    assert message in str(caught.value)
