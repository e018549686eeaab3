"""Secrets Store CSI Driver provider for HashiCorp Vault and Azure Key Vault."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("secrets-store-csi-provider")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
