"""Azure Key Vault backend (`provider: azure`), compatible with the official Azure provider's SPCs.

This module only declares the daemon flags; the backend loads in `create` and the Azure SDKs at its
first fetch, so a daemon that serves only Vault mounts never imports azure-*.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from provider.backends.azure.tokenproxy import DEFAULT_PROXY_URL, IN_CLUSTER_CA_FILE

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
    parser.add_argument(
        "--token-proxy-url", default=DEFAULT_PROXY_URL, metavar="URL",
        help="identity binding (useAzureTokenProxy): the AKS token proxy that token requests go to "
        f"(default {DEFAULT_PROXY_URL})",
    )
    parser.add_argument(
        "--sni-name", default="", metavar="NAME",
        help="identity binding: the token proxy's TLS SNI name (default: computed from the API server's "
        "certificate at the first identity-binding mount)",
    )
    parser.add_argument(
        "--token-proxy-ca-file", default=IN_CLUSTER_CA_FILE, metavar="FILE",
        help="identity binding: the cluster CA that the token proxy's and the API server's certificates are "
        f"checked with (default {IN_CLUSTER_CA_FILE})",
    )


def create(args: argparse.Namespace) -> Any:
    from provider.backends.azure.backend import AzureBackend
    from provider.backends.azure.clouds import canonical_cloud_name, resolve_cloud
    from provider.backends.azure.config import AzureOptions
    from provider.backends.azure.tokenproxy import TokenProxySettings, check_proxy_url
    from provider.errors import ProviderError
    from provider.policy import policy_from_args

    policy = policy_from_args(args)
    try:
        cloud = canonical_cloud_name(args.cloud_name)
        resolve_cloud("", "", cloud, policy)  # a bad default cloud stops the daemon at start, not every mount
    except ProviderError as exc:
        raise SystemExit(f"azure backend: --cloud-name: {exc.message}") from None
    problem = check_proxy_url(args.token_proxy_url)
    if problem:
        raise SystemExit(f"azure backend: --token-proxy-url: {problem}")
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "").strip()
    return AzureBackend(
        AzureOptions(
            construct_pem_chain=args.construct_pem_chain,
            split_cert_and_key=args.write_cert_and_key_in_separate_files,
            default_cloud=cloud,
            policy=policy,
            token_proxy=TokenProxySettings(
                url=args.token_proxy_url, sni_name=args.sni_name.strip(), ca_file=args.token_proxy_ca_file,
                api_server_port=int(port) if port.isdigit() else 443,
            ),
        )
    )
