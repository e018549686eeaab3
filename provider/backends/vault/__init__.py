"""The Vault backend package: its declaration (parameters, fields, flags: declaration.py) and its factory.

Everything that imports hvac is loaded inside `create`, so a daemon serving only Azure never loads it.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from provider.backends.vault.declaration import DECLARATION as declaration
from provider.backends.vault.declaration import DEFAULT_AUTH_MOUNT

__all__ = ["create", "declaration"]


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
    from provider.backends.vault.policy import VaultPolicy
    from provider.kube import TokenRequester
    from provider.policy import FilesPolicy

    flag = declaration.flag_values(args)
    flags = {
        ADDRESS: flag["vault_addr"],
        NAMESPACE: flag["vault_namespace"],
        CA_CERT: flag["vault_tls_ca_cert"],
        CA_DIRECTORY: flag["vault_tls_ca_directory"],
        SERVER_NAME: flag["vault_tls_server_name"],
        CLIENT_CERT: flag["vault_tls_client_cert"],
        CLIENT_KEY: flag["vault_tls_client_key"],
        SKIP_VERIFY: flag["vault_tls_skip_verify"],
    }
    try:
        defaults = defaults_from(os.environ, flags, flag["vault_mount"] or DEFAULT_AUTH_MOUNT,
                                 VaultPolicy.from_flags(flag, FilesPolicy.from_args(args)))
    except ValueError as exc:
        raise SystemExit(f"vault backend: {exc}") from None
    return VaultBackend(
        defaults,
        token_source=TokenRequester(os.environ),
        cache_size=flag["vault_cache_size"],
        concurrency=flag["vault_concurrency"],
        token_scope=flag["vault_token_scope"],
        cache_ttl=flag["cache_ttl"],
        lease_cache_size=flag["vault_lease_cache_size"],
    )
