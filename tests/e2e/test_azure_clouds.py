"""Cloud environments through the socket: each named cloud reaches its own Key Vault and Entra ID host
names, a custom cloud comes from the operator's file, the daemon's --cloud-name is the default, and
concurrent mounts in different clouds never see each other's environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.azure_fake.daemon import SandboxedDaemon
from tests.support.azure_fake.fixtures import Mounts, files_of, start_sandboxed
from tests.support.azure_fake.keyvault import FakeCloud
from tests.support.azure_fake.server import CHINA, GERMANY, PUBLIC, STACK, US_GOVERNMENT, cloud_file
from tests.support.azure_fake.world import World
from tests.support.daemon import ROOT

SECRET = {"objectName": "where", "objectType": "secret"}
NAMED = [("AzurePublicCloud", PUBLIC), ("AzureUSGovernmentCloud", US_GOVERNMENT), ("AzureChinaCloud", CHINA),
         ("AZUREGERMANCLOUD", GERMANY)]


@pytest.fixture(scope="module")
def mounts(azure_world: World, azure_daemon: SandboxedDaemon) -> Mounts:
    return Mounts(azure_world, azure_daemon)


@pytest.fixture(scope="module")
def same_name_everywhere(azure_world: World) -> str:
    """One vault name in every cloud, each holding the name of its cloud."""
    for cloud in (PUBLIC, US_GOVERNMENT, CHINA, GERMANY, STACK):
        azure_world.vault("kv-everywhere", cloud).set_secret("where", cloud.suffix)
    return "kv-everywhere"


@pytest.mark.parametrize(("name", "cloud"), NAMED)
def test_named_clouds_reach_their_own_hosts(mounts: Mounts, same_name_everywhere: str, name: str,
                                            cloud: FakeCloud) -> None:
    world = mounts.world
    world.fake.clear()
    response = mounts.mount(world.workload(same_name_everywhere, cloudName=name), [SECRET])
    assert files_of(response) == {"where": cloud.suffix.encode()}
    hosts = {r.host for r in world.fake.records()}
    assert hosts == {f"{same_name_everywhere}.{cloud.suffix}", cloud.login_host}


def test_concurrent_mounts_in_different_clouds_never_mix(mounts: Mounts, same_name_everywhere: str) -> None:
    world = mounts.world
    clouds = [n for n, _ in NAMED] * 6
    requests = [mounts.request(world.workload(same_name_everywhere, cloudName=name), [SECRET]) for name in clouds]
    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(mounts.call, requests))
    expected = {n: c.suffix.encode() for n, c in NAMED}
    assert [files_of(a)["where"] for a in answers] == [expected[n] for n in clouds]


@pytest.fixture(scope="module")
def stack_default(azure_world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mounts]:
    """A daemon whose default cloud is the operator's custom cloud (AZURE_ENVIRONMENT_FILEPATH), and which
    lets SPCs name cloud files under its --allowed-files-dir."""
    directory = tmp_path_factory.mktemp("azure-stack")
    allowed = directory / "clouds"
    allowed.mkdir()
    cloud_file(allowed, STACK)
    daemon = start_sandboxed(azure_world, directory, ["--cloud-name", "AzureStackCloud", "--allowed-files-dir",
                                                      str(allowed)],
                             env={"AZURE_ENVIRONMENT_FILEPATH": str(cloud_file(directory, STACK))})
    yield Mounts(azure_world, daemon)
    daemon.stop()


def test_the_daemon_default_cloud_and_an_explicit_one(stack_default: Mounts, same_name_everywhere: str) -> None:
    world = stack_default.world
    on_stack = stack_default.mount(world.workload(same_name_everywhere), [SECRET])
    assert files_of(on_stack) == {"where": STACK.suffix.encode()}
    public = stack_default.mount(world.workload(same_name_everywhere, cloudName="AzurePublicCloud"), [SECRET])
    assert files_of(public) == {"where": PUBLIC.suffix.encode()}


def test_an_spc_cloud_file_under_the_allowed_directory(stack_default: Mounts, same_name_everywhere: str) -> None:
    world = stack_default.world
    world.fake.clear()
    params = world.workload(same_name_everywhere, cloudName="azurestackcloud",
                            cloudEnvFileName=f"{STACK.suffix}.json")
    assert files_of(stack_default.mount(params, [SECRET])) == {"where": STACK.suffix.encode()}
    hosts = {r.host for r in world.fake.records()}
    assert f"{same_name_everywhere}.{STACK.suffix}" in hosts  # the token may be cached from the test above
    assert hosts <= {f"{same_name_everywhere}.{STACK.suffix}", STACK.login_host}
    error = stack_default.error({**params, "cloudEnvFileName": "../azure-stack0.json"}, [SECRET])
    assert error.code().name == "PERMISSION_DENIED"
    missing = stack_default.error({**params, "cloudEnvFileName": "akscustom.json"}, [SECRET])
    assert missing.code().name == "INVALID_ARGUMENT"
    assert "akscustom.json' does not exist in the provider pod" in missing.details()


def test_an_spc_cloud_file_outside_the_allowed_directory_is_refused(mounts: Mounts,
                                                                     same_name_everywhere: str) -> None:
    world = mounts.world
    error = mounts.error(world.workload(same_name_everywhere, cloudName="AzureStackCloud",
                                        cloudEnvFileName="/etc/hostname"), [SECRET])
    assert error.code().name == "PERMISSION_DENIED"
    assert "cloudEnvFileName" in error.details()


def test_an_invalid_default_cloud_stops_the_daemon_at_start(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "provider", "serve", "--backends", "azure", "--provider-dir", str(tmp_path / "p"),
         "--cloud-name", "AzureMarsCloud"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 2
    assert "argument --cloud-name: 'AzureMarsCloud' is not a cloud; use one of AzurePublicCloud" in result.stderr
    assert not (tmp_path / "p" / "azure.sock").exists()


def test_the_cloud_file_shape(tmp_path: Path) -> None:
    # The fake's own cloud file is what docs/azure.md shows: the four keys of go-autorest's format.
    assert set(json.loads(cloud_file(tmp_path).read_text())) == {
        "name", "activeDirectoryEndpoint", "keyVaultEndpoint", "keyVaultDNSSuffix"}
