"""Fixtures for the Vault integration tests: the shared configured OpenBao, a backend, a mount helper."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from provider.backends.vault import create, declaration
from provider.backends.vault.backend import VaultBackend
from provider.contract import plan_mount
from provider.deadline import deadline_from
from provider.files import SecretFile
from provider.localdriver import PodIdentity, build_mount_request
from provider.request import parse_mount_request
from tests.support.openbao import Cluster

MountFn = Callable[..., list[SecretFile]]



def make_backend(cluster: Cluster, tmp_path: Path, *flags: str) -> VaultBackend:
    parser = argparse.ArgumentParser()
    declaration.add_flags(parser)
    parser.add_argument("--allowed-vault-addresses", default="")
    parser.add_argument("--allowed-files-dir", default="")
    kubeconfig = cluster.kube.write_kubeconfig(tmp_path / "kubeconfig")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KUBECONFIG", str(kubeconfig))
        for name in ("VAULT_ADDR", "VAULT_TOKEN", "VAULT_NAMESPACE", "VAULT_SKIP_VERIFY"):
            patch.delenv(name, raising=False)
        backend: VaultBackend = create(parser.parse_args(["--vault-addr", cluster.bao.address, *flags]))
    return backend


@pytest.fixture
def backend(cluster: Cluster, tmp_path: Path) -> VaultBackend:
    return make_backend(cluster, tmp_path)


def spc(objects: str, **parameters: str) -> dict[str, object]:
    return {"kind": "SecretProviderClass", "metadata": {"name": "vault-test"},
            "spec": {"provider": "vault", "parameters": {"objects": objects, **parameters}}}


@pytest.fixture
def mount(cluster: Cluster) -> Iterator[MountFn]:
    """mount(backend, objects, pod, driver_token="vault" (None: the driver sends none), deadline, **parameters)."""

    def run(backend: VaultBackend, objects: str, pod: PodIdentity, driver_token: str | None = "vault",
            deadline: float | None = None, tokens: Mapping[str, str] | None = None,
            **parameters: str) -> list[SecretFile]:
        if tokens is None:
            tokens = {} if driver_token is None else {driver_token: cluster.pod_token(
                pod.namespace, pod.service_account, pod.name, pod.uid, driver_token)}
        request = build_mount_request(spc(objects, **parameters), pod, tokens=tokens)
        ctx = parse_mount_request(request.attributes, request.secrets, request.permission, request.target_path)
        return backend.fetch(plan_mount(backend, ctx), deadline if deadline is not None else deadline_from(None))

    yield run
