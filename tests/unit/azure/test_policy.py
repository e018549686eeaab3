"""azure/policy.py: whether an SPC may use the node's managed identity."""

from __future__ import annotations

import argparse

import pytest

from provider.backends.azure import declaration
from provider.backends.azure.policy import AzurePolicy
from provider.errors import ErrorKind, ProviderError
from provider.policy import FilesPolicy


def test_node_identity_is_allowed_unless_denied() -> None:
    AzurePolicy().check_node_identity("useVMManagedIdentity")
    with pytest.raises(ProviderError) as caught:
        AzurePolicy(allow_node_identity=False).check_node_identity("useVMManagedIdentity")
    assert caught.value.kind is ErrorKind.PERMISSION_DENIED
    assert "--deny-node-identity" in caught.value.message


@pytest.mark.parametrize(("flags", "allowed"), [({}, True), ({"deny_node_identity": True}, False)])
def test_the_policy_is_built_from_the_declared_flags(flags: dict[str, object], allowed: bool) -> None:
    files = FilesPolicy("/mnt/tls")
    built = AzurePolicy.from_flags(declaration.flag_values(argparse.Namespace(**flags)), files)
    assert built == AzurePolicy(allow_node_identity=allowed, files=files)
