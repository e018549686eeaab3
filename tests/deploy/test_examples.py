"""Every example SecretProviderClass is accepted by this provider's own backend: its `plan` (all the
checks made before any I/O) passes for a pod that mounts it, with the tokens the CSIDriver patch asks
kubelet for. So an example never fails on a cluster for a reason the provider could have told."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from provider.backends import Backend, create_backend
from provider.cli import build_parser
from provider.contract import plan_mount
from provider.localdriver import PodIdentity, build_mount_request
from provider.request import parse_mount_request
from tests.deploy.manifests import DEPLOY, SPC_KIND, Manifest, load_manifests, pod_specs, secrets_store_volumes

EXAMPLES = [m for m in load_manifests(DEPLOY / "examples")]
SPCS = [m for m in EXAMPLES if m.kind == SPC_KIND]
# A dummy JWT per audience the CSIDriver patch requests; plan only checks that the token is there.
TOKENS = {
    str(t["audience"]): "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"
    for m in load_manifests(DEPLOY)
    if m.kind == "CSIDriver"
    for t in m.doc["spec"]["tokenRequests"]
}
_backends: dict[str, Backend] = {}


def backend(name: str) -> Backend:
    if name not in _backends:
        _backends[name] = create_backend(name, build_parser().parse_args(["serve", "--backends", name]))
    return _backends[name]


def service_account_of(spc: Manifest) -> str:
    """The service account of an example pod that mounts this SPC ("default" if none says)."""
    for workload in EXAMPLES:
        for pod in pod_specs(workload):
            for volume in secrets_store_volumes(pod):
                if volume["csi"]["volumeAttributes"]["secretProviderClass"] == spc.name:
                    return str(pod.get("serviceAccountName", "default"))
    return "default"


@pytest.mark.parametrize("spc", SPCS, ids=lambda m: m.label)
def test_example_spc_passes_the_backends_checks(spc: Manifest) -> None:
    doc: dict[str, Any] = yaml.safe_load(yaml.safe_dump(spc.doc))
    pod = PodIdentity.named("example-0", spc.namespace or "default", service_account_of(spc))
    request = build_mount_request(doc, pod, tokens=TOKENS)
    ctx = parse_mount_request(request.attributes, request.secrets, request.permission, request.target_path)
    assert ctx.spc_name == spc.name
    assert plan_mount(backend(doc["spec"]["provider"]), ctx) is not None
