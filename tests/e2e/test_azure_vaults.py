"""Several Key Vaults in one SPC (official provider issue #1088) through the socket against the Azure fake:
an object's own `keyvaultName` overrides the SPC's, read with the same identity; its id names the vault."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

import grpc
import pytest

from tests.support.azure_fake.daemon import SandboxedDaemon
from tests.support.azure_fake.entra import EXCHANGE_AUDIENCE
from tests.support.azure_fake.fixtures import Mounts, files_of, versions_of
from tests.support.azure_fake.store import Vault
from tests.support.azure_fake.world import World

MARKER = "multi-vault-marker-" + secrets.token_hex(4)


@pytest.fixture(scope="module")
def mounts(azure_world: World, azure_daemon: SandboxedDaemon) -> Mounts:
    return Mounts(azure_world, azure_daemon)


@pytest.fixture(scope="module")
def vaults(azure_world: World) -> tuple[Vault, Vault]:
    """kv-main (the SPC's) and kv-other, each with a secret named `shared` of its own."""
    suffix = uuid.uuid4().hex[:6]
    main, other = azure_world.vault(f"kv-main-{suffix}"), azure_world.vault(f"kv-other-{suffix}")
    main.set_secret("shared", "from main")
    other.set_secret("shared", "from other")
    return main, other


def secret(name: str, **fields: str) -> dict[str, str]:
    return {"objectName": name, "objectType": "secret", **fields}


def test_one_volume_reads_two_vaults_with_one_identity(mounts: Mounts, vaults: tuple[Vault, Vault]) -> None:
    world, (main, other) = mounts.world, vaults
    db_version = main.set_secret("db-password", MARKER)
    api_version = other.set_secret("api-key", "api-key-value")
    # An identity of its own, so its first token request is this mount's.
    app = world.fake.directory.add_app()
    account = f"multi-vault-{uuid.uuid4().hex[:6]}"
    world.fake.directory.federate(app, world.issuer.issuer, f"system:serviceaccount:default:{account}")
    for vault in (main, other):
        vault.grant(app.principal_id)
    pod = world.pod("multi", service_account=account)
    world.fake.clear()
    response = mounts.mount({**world.workload(main.name), "clientID": app.client_id},
                            [secret("db-password"),
                             secret("api-key", keyvaultName=other.name),
                             secret("shared", objectAlias="main/shared"),
                             secret("shared", objectAlias="other/shared", keyvaultName=other.name)],
                            pod=pod, tokens={EXCHANGE_AUDIENCE: world.pod_token(pod)})
    assert files_of(response) == {"db-password": MARKER.encode(), "api-key": b"api-key-value",
                                  "main/shared": b"from main", "other/shared": b"from other"}
    versions = versions_of(response)
    assert list(versions) == ["secret/db-password", f"{other.name}/secret/api-key", "secret/shared",
                              f"{other.name}/secret/shared"]
    assert (versions["secret/db-password"], versions[f"{other.name}/secret/api-key"]) == (db_version, api_version)
    tokens = [r for r in world.fake.records("/oauth2/v2.0/token") if r.client_id == app.client_id]
    assert len(tokens) == 1, "both vaults are read with one credential and one access token"
    read_hosts = {r.host.split(":")[0] for r in world.fake.records("^/secrets/") if r.authorized}
    assert read_hosts == {f"{main.name}.vault.azure.net", f"{other.name}.vault.azure.net"}


@pytest.mark.parametrize(
    ("objects", "ids", "files"),
    [
        # the SPC's own vault, in any letter case: the official id
        ([secret("shared", keyvaultName="SAME")], ["secret/shared"], {"shared": b"from main"}),
        # another vault's version history: each version's id under the vault
        ([secret("shared", keyvaultName="OTHER", objectVersionHistory="2")], ["OTHER/secret/shared/0"],
         {"shared/0": b"from other"}),
    ],
)
def test_ids_name_the_vault_only_when_it_is_not_the_spcs(mounts: Mounts, vaults: tuple[Vault, Vault],
                                                         objects: list[dict[str, str]], ids: list[str],
                                                         files: dict[str, bytes]) -> None:
    world, (main, other) = mounts.world, vaults
    names = {"SAME": main.name.upper(), "OTHER": other.name}
    response = mounts.mount(world.workload(main.name), [{k: names.get(v, v) for k, v in o.items()} for o in objects])
    assert [v.id.replace(other.name, "OTHER") for v in response.object_version] == ids
    assert files_of(response) == files


def test_the_other_vault_refusing_fails_the_whole_mount(mounts: Mounts, vaults: tuple[Vault, Vault]) -> None:
    world, (main, _) = mounts.world, vaults
    locked = world.vault(f"kv-locked-{uuid.uuid4().hex[:6]}")
    locked.set_secret("api-key", MARKER)
    locked.revoke(world.wi.principal_id)
    error = mounts.error(world.workload(main.name),
                         [secret("shared"), secret("api-key", keyvaultName=locked.name)])
    assert error.code() is grpc.StatusCode.PERMISSION_DENIED
    assert f"https://{locked.name}.vault.azure.net/" in error.details() and "'api-key'" in error.details()
    assert MARKER not in error.details() and MARKER not in mounts.daemon.logs()


@pytest.mark.parametrize(
    ("objects", "message"),
    [
        ([secret("api-key", keyvaultName="kv_other!")],
         "object 0 (secret 'api-key'): keyvaultName 'kv_other!' is not a valid vault name"),
        ([secret("api-key", keyvaultName="ab")], "keyvaultName 'ab' is not a valid vault name"),
        ([secret("shared"), secret("shared", keyvaultName="OTHER")], "both write 'shared'"),
    ],
)
def test_invalid_objects_fail_before_any_request(mounts: Mounts, vaults: tuple[Vault, Vault],
                                                 objects: list[dict[str, Any]], message: str) -> None:
    world, (main, other) = mounts.world, vaults
    objects = [{k: other.name if v == "OTHER" else v for k, v in o.items()} for o in objects]
    world.fake.clear()
    error = mounts.error(world.workload(main.name), objects)
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT and message in error.details()
    assert world.fake.records() == []
