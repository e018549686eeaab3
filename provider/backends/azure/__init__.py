"""Azure Key Vault backend (`provider: azure`), compatible with the official Azure provider's SPCs.

This module holds the declaration (declaration.py) and the factory; the backend loads in `create` and the
Azure SDKs at its first fetch, so a daemon that serves only Vault mounts never imports azure-*.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from provider.backends.azure.declaration import DECLARATION as declaration

__all__ = ["create", "declaration"]


def create(args: argparse.Namespace) -> Any:
    from provider.backends.azure.backend import AzureBackend
    from provider.backends.azure.clouds import canonical_cloud_name, resolve_cloud
    from provider.backends.azure.config import AzureOptions
    from provider.backends.azure.policy import AzurePolicy
    from provider.backends.azure.tokenproxy import TokenProxySettings
    from provider.errors import ProviderError
    from provider.policy import FilesPolicy

    flag = declaration.flag_values(args)
    policy = AzurePolicy.from_flags(flag, FilesPolicy.from_args(args))
    try:
        cloud = canonical_cloud_name(flag["cloud_name"])
        resolve_cloud("", "", cloud, policy.files)  # a bad default cloud stops the daemon at start, not every mount
    except ProviderError as exc:
        raise SystemExit(f"azure backend: --cloud-name: {exc.message}") from None
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "").strip()
    return AzureBackend(
        AzureOptions(
            construct_pem_chain=flag["construct_pem_chain"],
            split_cert_and_key=flag["write_cert_and_key_in_separate_files"],
            default_cloud=cloud,
            policy=policy,
            token_proxy=TokenProxySettings(
                url=flag["token_proxy_url"], sni_name=flag["sni_name"].strip(), ca_file=flag["token_proxy_ca_file"],
                api_server_port=int(port) if port.isdigit() else 443,
            ),
        )
    )
