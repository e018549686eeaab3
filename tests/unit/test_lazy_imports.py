"""What a daemon loads: no Azure SDK until an Azure mount needs one, no hvac without the Vault backend."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import sys
from provider.backends import create_backend
from provider.cli import build_parser
from provider.localdriver import PodIdentity, build_mount_request
from provider.request import parse_mount_request
from provider.contract import plan_mount

args = build_parser().parse_args(["serve", "--backends", {backends!r}])
backends = {{name: create_backend(name, args) for name in {backends!r}.split(",")}}
if "azure" in backends:
    spc = {{"kind": "SecretProviderClass", "metadata": {{"name": "a"}}, "spec": {{"provider": "azure", "parameters": {{
        "keyvaultName": "kvname", "tenantId": "t", "clientID": "c",
        "objects": "array:\\n  - |\\n    objectName: s\\n    objectType: secret\\n"}}}}}}
    request = build_mount_request(spc, PodIdentity.named("p"), tokens={{"api://AzureADTokenExchange": "x.y.z"}})
    plan_mount(backends["azure"], parse_mount_request(request.attributes, request.secrets, request.permission, ""))
print(sorted({{m.split(".")[0] + ("." + m.split(".")[1] if m.startswith("azure.") else "") for m in sys.modules
              if m.startswith(("azure.", "msal", "hvac"))}}))
"""


@pytest.mark.parametrize(
    ("backends", "loaded"),
    [
        ("vault", ["hvac"]),
        ("azure", []),  # an Azure plan needs no SDK; the first fetch loads them
        ("vault,azure", ["hvac"]),
    ],
)
def test_sdks_load_only_when_a_mount_needs_them(backends: str, loaded: list[str]) -> None:
    done = subprocess.run([sys.executable, "-c", PROBE.format(backends=backends)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == repr(loaded)
