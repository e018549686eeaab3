"""Oversized results from the real backends: the provider refuses a response over the driver's 4 MiB
receive limit itself, with ResourceExhausted naming the largest objects, instead of letting the driver fail
on an opaque gRPC size error; a response that fits is answered, with a warning past 1 MiB."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import grpc
import pytest

from tests.hardening.conftest import Observed, new_pod, vault_mount
from tests.support.azure_fake.daemon import SandboxedDaemon
from tests.support.azure_fake.fixtures import Mounts, files_of, start_sandboxed
from tests.support.azure_fake.world import World
from tests.support.openbao import Cluster

KIB = 1024
SIZES = {"small": 10 * KIB, "medium": 1300 * KIB, "large": 1400 * KIB, "largest": 1500 * KIB}  # 4.11 MiB in all
LARGEST_NAMED = r"largest objects: '{p}largest' \(1536000 bytes\), '{p}large' \(1433600 bytes\), '{p}medium' " \
                r"\(1331200 bytes\)"


def test_vault_results_over_the_drivers_limit_are_refused_naming_the_largest(vault_daemon: Observed,
                                                                             cluster: Cluster) -> None:
    path = f"big-{uuid.uuid4().hex[:6]}"
    cluster.bao.api("POST", f"secret/data/{path}", {"data": {k: "v" * n for k, n in SIZES.items()}})
    objects = "\n".join(f"- {{objectName: {k}, secretPath: secret/data/{path}, secretKey: {k}}}" for k in SIZES)
    failed = vault_mount(vault_daemon.daemon, cluster, new_pod(), objects, roleName="kv-role")
    assert failed.code is grpc.StatusCode.RESOURCE_EXHAUSTED, failed.details
    assert re.search(r"over the driver's 4194304-byte limit; " + LARGEST_NAMED.format(p=""), failed.details)
    fits = "\n".join(f"- {{objectName: {k}, secretPath: secret/data/{path}, secretKey: {k}}}" for k in ("small",
                                                                                                      "largest"))
    answer = vault_mount(vault_daemon.daemon, cluster, new_pod(), fits, roleName="kv-role")
    assert answer.files is not None and len(answer.files["largest"]) == SIZES["largest"]
    assert "mount is over 1 MiB" in vault_daemon.daemon.logs()


@pytest.fixture(scope="module")
def azure(azure_world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mounts]:
    daemon: SandboxedDaemon = start_sandboxed(azure_world, tmp_path_factory.mktemp("azure-oversized"))
    yield Mounts(azure_world, daemon)
    daemon.stop()


def test_azure_results_over_the_drivers_limit_are_refused_naming_the_largest(azure: Mounts) -> None:
    world = azure.world
    vault = world.vault(f"kv-big-{uuid.uuid4().hex[:6]}")
    for name, size in SIZES.items():
        vault.set_secret(name, "v" * size)
    objects = [{"objectName": name, "objectType": "secret"} for name in SIZES]
    failure = azure.error(world.workload(vault.name), objects)
    assert failure.code() is grpc.StatusCode.RESOURCE_EXHAUSTED, failure.details()
    assert re.search(LARGEST_NAMED.format(p="secret/"), failure.details() or ""), failure.details()
    answer = azure.mount(world.workload(vault.name), objects[:1] + objects[-1:])
    assert len(files_of(answer)["largest"]) == SIZES["largest"]
