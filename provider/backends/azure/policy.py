"""What an Azure SPC may ask of the node: the Azure policy.

useVMManagedIdentity hands the SPC the node's identity: explicit in the SPC, as the official provider
allows, but an operator of a shared cluster can refuse it with `--deny-node-identity`. The files an SPC
may name (cloudEnvFileName) are the core's policy (provider.policy), carried here with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from provider.errors import ErrorKind, ProviderError
from provider.policy import FilesPolicy


@dataclass(frozen=True)
class AzurePolicy:
    """The operator's limits on what an Azure SPC may name; the defaults allow the node's identity and no file."""

    allow_node_identity: bool = True
    files: FilesPolicy = field(default_factory=FilesPolicy)

    @classmethod
    def from_flags(cls, flag: Mapping[str, Any], files: FilesPolicy) -> AzurePolicy:
        """From the values of the declared policy flags (Declaration.flag_values)."""
        return cls(allow_node_identity=not flag["deny_node_identity"], files=files)

    def check_node_identity(self, parameter: str) -> None:
        if not self.allow_node_identity:
            raise ProviderError(
                ErrorKind.PERMISSION_DENIED,
                f"{parameter} asks for the node's managed identity, which this provider refuses "
                "(--deny-node-identity); use workload identity (clientID) instead",
            )
