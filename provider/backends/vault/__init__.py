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
    add("--vault-token-scope", choices=("pod", "service-account"), default="pod",
        help="pod: one Vault token per pod (default); service-account: the pods of a service account share one "
        "(fewer logins; not for roles that bind pod-specific claims, see docs/performance.md)")
    add("--cache-ttl", type=_duration, default=0.0, metavar="DURATION",
        help="keep Vault's answers to GET and LIST reads this long (e.g. 30s, 2m) for the identity that read them; "
        "0 (default) reads at every mount. A changed secret reaches pods up to this much later")
    add("--vault-lease-cache-size", type=int, default=1000,
        help="leased credentials kept per pod and request, so rotation polls get the same ones until 2/3 of "
        "their lease; 0 reads new credentials at every mount")


def _duration(text: str) -> float:
    from provider.backends.vault.values import parse_duration

    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return seconds


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
        token_scope=getattr(args, "vault_token_scope", "pod"),
        cache_ttl=getattr(args, "cache_ttl", 0.0),
        lease_cache_size=getattr(args, "vault_lease_cache_size", 1000),
    )
