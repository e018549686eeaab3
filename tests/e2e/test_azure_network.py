"""Network behaviour through the daemon: throttling with Retry-After, the driver's deadline, many mounts
at once sharing one identity's token, and token refresh near expiry."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from tests.support.azure_fake.daemon import SandboxedDaemon
from tests.support.azure_fake.fixtures import Mounts, files_of
from tests.support.azure_fake.world import World

SECRET = {"objectName": "secret1", "objectType": "secret"}


@pytest.fixture(scope="module")
def mounts(azure_world: World, azure_daemon: SandboxedDaemon) -> Mounts:
    return Mounts(azure_world, azure_daemon)


def test_throttled_reads_wait_for_retry_after(mounts: Mounts) -> None:
    world = mounts.world
    vault = world.vault("kv-net-429")
    vault.set_secret("secret1", "after the wait")
    mounts.mount(world.workload(vault.name), [SECRET])
    world.fake.clear()
    world.fake.fail(r"^/secrets/secret1/$", status=429, times=2, retry_after="1")
    started = time.monotonic()
    assert files_of(mounts.mount(world.workload(vault.name), [SECRET])) == {"secret1": b"after the wait"}
    assert time.monotonic() - started >= 2.0
    assert [r.status for r in world.fake.records("^/secrets/secret1/$")] == [429, 429, 200]


def test_the_drivers_deadline_is_kept_and_the_daemon_serves_on(mounts: Mounts) -> None:
    world = mounts.world
    vault = world.vault("kv-net-slow")
    vault.set_secret("secret1", "v")
    vault.set_secret("fast", "fast")
    mounts.mount(world.workload(vault.name), [SECRET])
    world.fake.fail(r"^/secrets/secret1/$", status=None, times=None, delay=6.0)
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as caught:
        mounts.call(mounts.request(world.workload(vault.name), [SECRET]), timeout=2.0)
    assert caught.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 3.0
    fast = mounts.mount(world.workload(vault.name), [{"objectName": "fast", "objectType": "secret"}])
    assert files_of(fast) == {"fast": b"fast"}
    world.fake.clear()


def test_many_pods_at_once_share_one_token_per_identity(mounts: Mounts) -> None:
    world = mounts.world
    app = world.fake.directory.add_app()  # an identity of its own: no token cached by earlier tests
    world.fake.directory.federate(app, world.issuer.issuer, "system:serviceaccount:default:replicas")
    vault = world.vault("kv-net-many")
    vault.grant(app.principal_id)
    for i in range(3):
        vault.set_secret(f"s{i}", f"value-{i}")
    objects = [{"objectName": f"s{i}", "objectType": "secret"} for i in range(3)]
    params = {**world.workload(vault.name), "clientID": app.client_id}
    requests = [mounts.request(params, objects, pod=world.pod(f"replica-{n}", service_account="replicas"))
                for n in range(20)]
    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(mounts.call, requests))
    assert all(files_of(a) == {f"s{i}": f"value-{i}".encode() for i in range(3)} for a in answers)
    exchanges = [r for r in world.fake.records("/oauth2/v2.0/token", "POST") if r.client_id == app.client_id]
    assert len(exchanges) == 1


def test_a_token_near_expiry_is_renewed(mounts: Mounts) -> None:
    world = mounts.world
    vault = world.vault("kv-net-expiry")
    vault.set_secret("secret1", "v")
    params = {"keyvaultName": vault.name, "tenantID": world.tenant_id}
    lifetime = world.fake.directory.token_lifetime
    world.fake.directory.token_lifetime = 240  # inside the 5-minute refresh margin: never reused
    try:
        world.fake.clear()
        for _ in range(2):
            mounts.mount(params, [SECRET], secrets=world.sp_secrets())
        assert len(world.fake.records("/oauth2/v2.0/token", "POST")) == 2
    finally:
        world.fake.directory.token_lifetime = lifetime
    world.fake.clear()
    for _ in range(3):
        mounts.mount(params, [SECRET], secrets=world.sp_secrets())
    assert len(world.fake.records("/oauth2/v2.0/token", "POST")) == 1
