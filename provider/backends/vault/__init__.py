"""The Vault backend package: its daemon flags and its factory.

Everything that imports hvac is loaded inside `create`, so a daemon serving only Azure never loads it.
"""

from __future__ import annotations

import argparse
import os
from typing import Any


def add_arguments(parser: Any) -> None:
    """The --vault-* flags: defaults for SecretProviderClasses that do not set the parameter."""
    add = parser.add_argument
    add("--vault-addr", default=None, help="default Vault address (else VAULT_ADDR, else https://127.0.0.1:8200)")
    add("--vault-mount", default="kubernetes", help="default auth mount path for login (Kubernetes or JWT auth)")
    add("--vault-namespace", default=None, help="default Vault namespace (else VAULT_NAMESPACE)")
    add("--vault-tls-ca-cert", default=None, help="default PEM CA file to trust (else VAULT_CACERT)")
    add("--vault-tls-ca-directory", default=None, help="default directory of PEM CA files (else VAULT_CAPATH)")
    add("--vault-tls-server-name", default=None, help="default TLS server name (else VAULT_TLS_SERVER_NAME)")
    add("--vault-tls-client-cert", default=None, help="default PEM client certificate (else VAULT_CLIENT_CERT)")
    add("--vault-tls-client-key", default=None, help="default PEM client key (else VAULT_CLIENT_KEY)")
    add("--vault-tls-skip-verify", action="store_true", default=None,
        help="do not verify Vault's certificate by default (else VAULT_SKIP_VERIFY); for tests only")
    add("--vault-cache-size", type=int, default=1000,
        help="Vault tokens kept, one per pod and login setting; 0 disables the cache (a login every mount)")
    add("--vault-concurrency", type=int, default=8, help="Vault reads in flight at once within one mount")


def create(args: argparse.Namespace) -> Any:
    from provider.backends.vault.backend import VaultBackend
    from provider.backends.vault.config import (
        ADDRESS,
        CA_CERT,
        CA_DIRECTORY,
        CLIENT_CERT,
        CLIENT_KEY,
        NAMESPACE,
        SERVER_NAME,
        SKIP_VERIFY,
        defaults_from,
    )
    from provider.kube import TokenRequester
    from provider.policy import policy_from_args

    flags = {
        ADDRESS: getattr(args, "vault_addr", None),
        NAMESPACE: getattr(args, "vault_namespace", None),
        CA_CERT: getattr(args, "vault_tls_ca_cert", None),
        CA_DIRECTORY: getattr(args, "vault_tls_ca_directory", None),
        SERVER_NAME: getattr(args, "vault_tls_server_name", None),
        CLIENT_CERT: getattr(args, "vault_tls_client_cert", None),
        CLIENT_KEY: getattr(args, "vault_tls_client_key", None),
        SKIP_VERIFY: getattr(args, "vault_tls_skip_verify", None),
    }
    try:
        defaults = defaults_from(os.environ, flags, getattr(args, "vault_mount", None) or "kubernetes",
                                 policy_from_args(args))
    except ValueError as exc:
        raise SystemExit(f"vault backend: {exc}") from None
    return VaultBackend(
        defaults,
        token_source=TokenRequester(os.environ),
        cache_size=getattr(args, "vault_cache_size", 1000),
        concurrency=getattr(args, "vault_concurrency", 8),
    )
