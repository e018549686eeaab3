"""Azure Key Vault backend (`provider: azure`), compatible with the official Azure provider's SPCs.

This module only declares the daemon flags; the backend loads in `create` and the Azure SDKs at its
first fetch, so a daemon that serves only Vault mounts never imports azure-*.
"""

from __future__ import annotations

import argparse
from typing import Any

_TRUE = {"1", "t", "true", "yes", "on"}
_FALSE = {"0", "f", "false", "no", "off"}


def _flag(value: str) -> bool:
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def add_arguments(parser: Any) -> None:
    """The official provider's flags, spelled the same so its Helm arguments carry over."""
    parser.add_argument(
        "--construct-pem-chain", type=_flag, nargs="?", const=True, default=True, metavar="BOOL",
        help="order PKCS#12 certificate chains leaf, intermediates, root (default true)",
    )
    parser.add_argument(
        "--write-cert-and-key-in-separate-files", type=_flag, nargs="?", const=True, default=False,
        metavar="BOOL", help="also write <file>.crt and <file>.key for certificate-backed secrets (default false)",
    )
    parser.add_argument(
        "--cloud-name", default="AzurePublicCloud", metavar="NAME",
        help="the cloud for SPCs without cloudName: AzurePublicCloud, AzureUSGovernmentCloud, AzureChinaCloud, "
        "AzureGermanCloud or AzureStackCloud (with AZURE_ENVIRONMENT_FILEPATH)",
    )


def create(args: argparse.Namespace) -> Any:
    from provider.backends.azure.backend import AzureBackend
    from provider.backends.azure.clouds import canonical_cloud_name, resolve_cloud
    from provider.backends.azure.config import AzureOptions
    from provider.errors import ProviderError
    from provider.policy import policy_from_args

    policy = policy_from_args(args)
    try:
        cloud = canonical_cloud_name(args.cloud_name)
        resolve_cloud("", "", cloud, policy)  # a bad default cloud stops the daemon at start, not every mount
    except ProviderError as exc:
        raise SystemExit(f"azure backend: --cloud-name: {exc.message}") from None
    return AzureBackend(
        AzureOptions(
            construct_pem_chain=args.construct_pem_chain,
            split_cert_and_key=args.write_cert_and_key_in_separate_files,
            default_cloud=cloud,
            policy=policy,
        )
    )
