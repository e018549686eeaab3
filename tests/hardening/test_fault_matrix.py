"""The fault matrix, through the daemon's sockets: each fault ends the mount within the driver's deadline
with the code and message docs/faults.md lists, and the next mount after the fault is gone succeeds with
the same pod and SecretProviderClass. Vault faults come from a proxy in front of the real OpenBao (or, for
sealing, an OpenBao of the test's own); Key Vault and Entra ID faults from the Azure fake's injection."""

from __future__ import annotations

import itertools
import re
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

from tests.hardening.conftest import Observed, new_pod, vault_mount
from tests.hardening.faultproxy import FaultProxy
from tests.support.azure_fake.daemon import SandboxedDaemon
from tests.support.azure_fake.fixtures import Mounts, files_of, start_sandboxed
from tests.support.azure_fake.world import World
from tests.support.openbao import KV2, Cluster, OpenBao

OBJECTS = "- {objectName: secret-1, secretPath: secret/data/kv1, secretKey: bar1}"
EXPECTED = {"secret-1": KV2["kv1"]["bar1"].encode()}
# The deadline the tests give a mount. kubelet gives about two minutes; these faults must end well inside
# that, so a shorter one proves the same and keeps the suite fast. A bound is "did not hang", not speed.
DEADLINE = 8.0
SLACK = 1.5
UNAVAILABLE = grpc.StatusCode.UNAVAILABLE


# ------------------------------------------------------------------------------------------------ Vault
ADDRESS = r"Vault at http://127\.0\.0\.1:\d+"
LOGIN = r"while logging in with role 'kv-role' at auth/kubernetes to read object 'secret-1'"
READ = r"object 'secret-1' \(secretPath 'secret/data/kv1'\)"
NOT_LOGGED_IN = r"could not log in service account test/nginx-kv \(pod pod-\w+\) to role 'kv-role'"
# (id, the fault, whether the pod has a cached Vault token first (so the fault meets the read, not the
# login), the mount's deadline, the code, the message)
VAULT_FAULTS: list[tuple[str, Callable[[FaultProxy], object], bool, float, grpc.StatusCode, str]] = [
    ("unreachable at login", lambda p: p.close(), False, DEADLINE, UNAVAILABLE,
     rf"^cannot connect to {ADDRESS} {LOGIN} \(Connection refused\); check vaultAddress and that Vault is running$"),
    ("unreachable at read", lambda p: p.close(), True, DEADLINE, UNAVAILABLE,
     rf"^cannot connect to {ADDRESS} while reading {READ} \(Connection refused\); check vaultAddress and that "
     r"Vault is running$"),
    ("never answers", lambda p: p.inject("silent"), False, 2.0, grpc.StatusCode.DEADLINE_EXCEEDED,
     rf"^{ADDRESS} did not answer before the mount deadline {LOGIN}; check that Vault is up, unsealed and not "
     r"overloaded$"),
    ("500s at login", lambda p: p.inject("status", status=500), False, DEADLINE, UNAVAILABLE,
     rf"^{ADDRESS} {NOT_LOGGED_IN} \(internal error\); object 'secret-1' was not read; the driver retries the "
     r"mount$"),
    ("500s at read", lambda p: p.inject("status", status=500), True, DEADLINE, UNAVAILABLE,
     rf"^{READ}: {ADDRESS} could not answer GET /v1/secret/data/kv1; the driver retries the mount "
     r"\(internal error\)$"),
    ("429 with Retry-After at login", lambda p: p.inject("status", status=429, retry_after="1"), False, DEADLINE,
     UNAVAILABLE, rf"^{ADDRESS} {NOT_LOGGED_IN} \(request rate limited\); object 'secret-1' was not read; the "
     r"driver retries the mount$"),
    ("429 with Retry-After at read", lambda p: p.inject("status", status=429, retry_after="1"), True, DEADLINE,
     UNAVAILABLE, rf"^{READ}: {ADDRESS} could not answer GET /v1/secret/data/kv1; the driver retries the mount "
     r"\(request rate limited\)$"),
]


@pytest.mark.parametrize(("fault", "warm", "timeout", "code", "message"), [f[1:] for f in VAULT_FAULTS],
                         ids=[f[0] for f in VAULT_FAULTS])
def test_vault_fault_fails_in_time_and_the_next_mount_recovers(
    vault_daemon: Observed, cluster: Cluster, proxy: FaultProxy, fault: Callable[[FaultProxy], object],
    warm: bool, timeout: float, code: grpc.StatusCode, message: str,
) -> None:
    pod = new_pod()
    parameters = {"roleName": "kv-role", "vaultAddress": proxy.address}
    if warm:
        assert vault_mount(vault_daemon.daemon, cluster, pod, OBJECTS, **parameters).files == EXPECTED
    fault(proxy)
    try:
        failed = vault_mount(vault_daemon.daemon, cluster, pod, OBJECTS, timeout=timeout, **parameters)
    finally:
        proxy.clear()
    assert (failed.code, failed.files) == (code, None), failed.details
    assert re.search(message, failed.details), failed.details
    assert failed.seconds < timeout + SLACK
    recovered = vault_mount(vault_daemon.daemon, cluster, pod, OBJECTS, **parameters)
    assert recovered.files == EXPECTED, recovered.details


def test_throttling_inside_the_deadline_is_absorbed_after_retry_after(
    vault_daemon: Observed, cluster: Cluster, proxy: FaultProxy,
) -> None:
    pod = new_pod()
    assert vault_mount(vault_daemon.daemon, cluster, pod, OBJECTS, roleName="kv-role",
                       vaultAddress=proxy.address).files == EXPECTED  # logged in: the reads are what is throttled
    mark = proxy.mark()
    proxy.inject("status", path="^/v1/secret/", status=429, retry_after="1", times=2)
    try:
        outcome = vault_mount(vault_daemon.daemon, cluster, pod, OBJECTS, roleName="kv-role",
                              vaultAddress=proxy.address)
    finally:
        proxy.clear()
    assert outcome.files == EXPECTED, outcome.details
    reads = proxy.requests("^/v1/secret/data/kv1$", since=mark)
    assert [r.status for r in reads] == [429, 429, 200]
    assert all(later.at - earlier.at >= 0.95 for earlier, later in itertools.pairwise(reads)), \
        "a retry came before the Retry-After the server asked for"


def test_a_revoked_token_is_replaced_by_one_new_login(vault_daemon: Observed, cluster: Cluster,
                                                      proxy: FaultProxy) -> None:
    pod = new_pod()
    first = proxy.mark()
    assert vault_mount(vault_daemon.daemon, cluster, pod, OBJECTS, roleName="kv-role",
                       vaultAddress=proxy.address).files == EXPECTED
    (token,) = {r.vault_token for r in proxy.requests("^/v1/secret/data/kv1$", since=first)}
    cluster.bao.api("POST", "auth/token/revoke", {"token": token})
    mark = proxy.mark()
    outcome = vault_mount(vault_daemon.daemon, cluster, pod, OBJECTS, roleName="kv-role", vaultAddress=proxy.address)
    assert outcome.files == EXPECTED, outcome.details
    assert len(proxy.requests("/login$", since=mark)) == 1
    assert [r.status for r in proxy.requests("^/v1/secret/data/kv1$", since=mark)] == [403, 200]


def test_an_expired_service_account_token_is_refused_and_a_fresh_one_works(vault_daemon: Observed,
                                                                           cluster: Cluster) -> None:
    pod = new_pod()
    expired = cluster.issuer.pod_token(namespace=pod.namespace, service_account=pod.service_account,
                                       pod_name=pod.name, pod_uid=pod.uid, audience="vault", lifetime=600,
                                       issued_at=time.time() - 3600)
    failed = vault_mount(vault_daemon.daemon, cluster, pod, OBJECTS, token=expired, roleName="kv-role")
    assert failed.code is grpc.StatusCode.UNAUTHENTICATED, failed.details
    assert "refused the login of service account test/nginx-kv" in failed.details
    assert "role 'kv-role' at auth/kubernetes" in failed.details
    assert expired not in failed.details
    assert failed.seconds < DEADLINE
    assert vault_mount(vault_daemon.daemon, cluster, pod, OBJECTS, roleName="kv-role").files == EXPECTED


@pytest.fixture
def own_openbao(cluster: Cluster, tmp_path: Path) -> Iterator[OpenBao]:
    """An OpenBao of this test's own (sealing the shared one would fail the tests beside this one), with
    JWT auth trusting the tests' issuer, a role for test/nginx-kv and one secret."""
    with OpenBao(tmp_path / "own-openbao") as bao:
        bao.api("PUT", "sys/policies/acl/kv", {"policy": 'path "secret/*" { capabilities = ["read"] }'})
        bao.api("POST", "sys/auth/jwt", {"type": "jwt"})
        bao.api("POST", "auth/jwt/config", {"jwt_validation_pubkeys": [cluster.issuer.public_pem],
                                            "bound_issuer": cluster.issuer.issuer})
        bao.api("POST", "auth/jwt/role/kv-role", {
            "role_type": "jwt", "user_claim": "sub", "bound_audiences": ["vault"], "token_policies": ["kv"],
            "bound_subject": "system:serviceaccount:test:nginx-kv", "token_ttl": "20m"})
        bao.api("POST", "secret/data/kv1", {"data": KV2["kv1"]})
        yield bao


def unseal_key(bao: OpenBao) -> str:
    found = re.search(r"Unseal Key: (\S+)", bao.log_path.read_text(errors="replace"))
    assert found, "the dev server printed no unseal key"
    return found.group(1)


@pytest.mark.parametrize("logged_in", [False, True], ids=["sealed before login", "sealed after login"])
def test_a_sealed_vault_is_unavailable_until_unsealed(vault_daemon: Observed, cluster: Cluster,
                                                      own_openbao: OpenBao, logged_in: bool) -> None:
    pod = new_pod()
    parameters = {"roleName": "kv-role", "vaultAuthMountPath": "jwt", "vaultAddress": own_openbao.address}
    if logged_in:
        assert vault_mount(vault_daemon.daemon, cluster, pod, OBJECTS, **parameters).files == EXPECTED
    own_openbao.seal()
    failed = vault_mount(vault_daemon.daemon, cluster, pod, OBJECTS, **parameters)
    assert failed.code is UNAVAILABLE, failed.details
    assert f"Vault at {own_openbao.address} is sealed" in failed.details and "'secret-1'" in failed.details
    assert "Unseal Vault; the driver retries the mount" in failed.details
    assert failed.seconds < DEADLINE
    own_openbao.bao("operator", "unseal", unseal_key(own_openbao))
    assert vault_mount(vault_daemon.daemon, cluster, pod, OBJECTS, **parameters).files == EXPECTED


# ------------------------------------------------------------------------------------------------ Azure
@pytest.fixture(scope="module")
def azure(azure_world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mounts]:
    """A sandboxed daemon of this module's own, so no earlier test has warmed its token caches."""
    daemon: SandboxedDaemon = start_sandboxed(azure_world, tmp_path_factory.mktemp("azure-faults"))
    yield Mounts(azure_world, daemon)
    daemon.stop()


SECRET = {"objectName": "secret1", "objectType": "secret"}


def azure_outcome(azure: Mounts, params: dict[str, str], pod_name: str, timeout: float = DEADLINE
                  ) -> tuple[dict[str, bytes] | None, grpc.StatusCode | None, str, float]:
    request = azure.request(params, [SECRET], pod=azure.world.pod(pod_name))
    started = time.monotonic()
    try:
        answer = azure.call(request, timeout=timeout)
    except grpc.RpcError as exc:
        return None, exc.code(), exc.details() or "", time.monotonic() - started
    return files_of(answer), None, "", time.monotonic() - started


AZURE_FAULTS = [
    ("429 storm", {"path": r"^/secrets/secret1/", "status": 429, "retry_after": "0.5"}, UNAVAILABLE,
     r"^object 0 \(secret 'secret1'\): Key Vault https://kv-faults-\w+\.vault\.azure\.net/ is unavailable "
     r"\(throttled\) after 4 attempts \(HTTP 429 Throttled: injected 429\)$"),
    ("500s", {"path": r"^/secrets/secret1/", "status": 500}, UNAVAILABLE,
     r"^object 0 \(secret 'secret1'\): Key Vault https://kv-faults-\w+\.vault\.azure\.net/ is unavailable "
     r"after 4 attempts \(HTTP 500 InternalServerError: injected 500\)$"),
    ("slower than the deadline", {"path": r"^/secrets/secret1/", "status": None, "delay": 4.0},
     grpc.StatusCode.DEADLINE_EXCEEDED, r"^Key Vault did not answer before the mount's deadline \(reading objects: "
     r"object 0 \(secret 'secret1'\) in https://kv-faults-\w+\.vault\.azure\.net/\); check the vault's latency "
     r"and throttling$"),
]


@pytest.mark.parametrize(("fault", "code", "message"), [f[1:] for f in AZURE_FAULTS], ids=[f[0] for f in AZURE_FAULTS])
def test_key_vault_fault_fails_in_time_and_the_next_mount_recovers(azure: Mounts, fault: dict[str, object],
                                                                   code: grpc.StatusCode, message: str) -> None:
    world = azure.world
    vault = world.vault(f"kv-faults-{uuid.uuid4().hex[:8]}")
    vault.set_secret("secret1", "recovered")
    params = world.workload(vault.name)
    world.fake.clear()
    world.fake.fail(times=None, **fault)  # type: ignore[arg-type]
    timeout = 2.0 if code is grpc.StatusCode.DEADLINE_EXCEEDED else DEADLINE
    outcomes = list(ThreadPoolExecutor(10).map(lambda i: azure_outcome(azure, params, f"storm-{i}", timeout),
                                               range(10)))
    reads = len(world.fake.records(r"^/secrets/secret1/"))
    world.fake.clear()
    for files, failed_code, details, seconds in outcomes:
        assert (files, failed_code) == (None, code), details
        assert re.search(message, details), details
        assert seconds < timeout + SLACK
    if fault["status"] is not None:  # a delayed request is recorded only once answered
        assert 10 <= reads <= 10 * 4, f"{reads} reads for 10 mounts: retries must stay bounded in a storm"
    for files, *_ in ThreadPoolExecutor(10).map(lambda i: azure_outcome(azure, params, f"storm-{i}"), range(10)):
        assert files == {"secret1": b"recovered"}


def test_slow_key_vault_answers_inside_the_deadline_succeed(azure: Mounts) -> None:
    world = azure.world
    vault = world.vault(f"kv-slow-{uuid.uuid4().hex[:8]}")
    vault.set_secret("secret1", "slow but there")
    world.fake.clear()
    world.fake.fail(r"^/secrets/secret1/", status=None, times=None, delay=0.5)
    try:
        files, _, details, _ = azure_outcome(azure, world.workload(vault.name), "patient")
    finally:
        world.fake.clear()
    assert files == {"secret1": b"slow but there"}, details


@pytest.mark.parametrize("mode", ["workload identity", "managed identity"])
def test_entra_id_down_fails_in_time_and_the_next_mount_recovers(azure: Mounts, mode: str) -> None:
    world = azure.world
    vault = world.vault(f"kv-entra-{uuid.uuid4().hex[:8]}")
    vault.set_secret("secret1", "after the outage")
    if mode == "workload identity":  # an identity of its own: no token of it is cached anywhere
        app = world.fake.directory.add_app()
        world.fake.directory.federate(app, world.issuer.issuer, "system:serviceaccount:default:entra-down")
        params = {**world.workload(vault.name), "clientID": app.client_id}
        token_path = r"/oauth2/v2\.0/token$"
    else:
        app = world.fake.directory.add_user_identity()
        params = {"keyvaultName": vault.name, "tenantID": world.tenant_id, "useVMManagedIdentity": "true",
                  "userAssignedIdentityID": app.client_id}
        token_path = r"^/metadata/identity/oauth2/token$"
    vault.grant(app.principal_id)
    pod = world.pod("entra-down", service_account="entra-down")
    world.fake.clear()
    world.fake.fail(token_path, status=503, times=None, retry_after="1")
    started = time.monotonic()
    try:
        with pytest.raises(grpc.RpcError) as caught:
            azure.call(azure.request(params, [SECRET], pod=pod), timeout=DEADLINE)
    finally:
        world.fake.clear()
    assert time.monotonic() - started < DEADLINE + SLACK
    assert caught.value.code() is UNAVAILABLE, caught.value.details()
    service = "Entra ID" if mode == "workload identity" else "the node's managed identity endpoint (IMDS)"
    assert f"{mode} login to Entra ID failed: {service} answered HTTP 503" in (caught.value.details() or "")
    # azure-identity (MSAL) does not ask again until the Retry-After of a 5xx has passed (else 5 s), as Entra ID
    # wants; kubelet retries the mount with backoff, and so does this loop, a bounded number of times.
    for _ in range(12):
        try:
            assert files_of(azure.mount(params, [SECRET], pod=pod)) == {"secret1": b"after the outage"}
            return
        except grpc.RpcError as exc:
            assert exc.code() is UNAVAILABLE, exc.details()
        time.sleep(1.0)
    raise AssertionError("no mount succeeded after the token endpoint came back")
