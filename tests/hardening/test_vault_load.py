"""Load with mixed identities against a real OpenBao, through the socket: 200 concurrent mounts of pods in
five tenants (namespaces), each tenant with its own service account, Vault role, policy and secret; one in
five callers is denied (a service account the role does not bind, or a secret of another tenant). Every
caller gets exactly its own tenant's value and the denied get nothing; after a warm-up round fills the
daemon's RPC pool and connection pool, a second round leaves no more threads or file descriptors. The same
holds with the opt-in caches on (tokens shared by a service account's pods, answers kept for a minute)."""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from provider.localdriver import PodIdentity, build_mount_request, call_mount
from tests.support.daemon import Daemon
from tests.support.openbao import Cluster, daemon_env, vault_spc

TENANTS = 5
MOUNTS = 200
RUN = uuid.uuid4().hex[:6]


@dataclass(frozen=True)
class Tenant:
    index: int
    namespace: str
    service_account: str
    role: str
    auth_mount: str  # half the tenants log in with JWT auth, half with Kubernetes auth (a TokenReview)
    path: str
    value: str


@pytest.fixture(scope="module")
def tenants(cluster: Cluster) -> list[Tenant]:
    """Each tenant's policy may read its own secret only; its role binds its own service account only."""
    made = []
    for i in range(TENANTS):
        tenant = Tenant(i, f"load-{RUN}-{i}", f"app-{i}", f"load-{RUN}-{i}", "jwt" if i % 2 else "kubernetes",
                        f"secret/data/load-{RUN}/tenant-{i}", f"tenant-{i}-" + secrets.token_hex(6))
        bao = cluster.bao
        bao.api("PUT", f"sys/policies/acl/{tenant.role}",
                {"policy": f'path "{tenant.path}" {{ capabilities = ["read"] }}'})
        bao.api("POST", tenant.path, {"data": {"value": tenant.value}})
        if tenant.auth_mount == "jwt":
            bao.api("POST", f"auth/jwt/role/{tenant.role}", {
                "role_type": "jwt", "user_claim": "sub", "bound_audiences": ["vault"], "token_ttl": "20m",
                "bound_subject": f"system:serviceaccount:{tenant.namespace}:{tenant.service_account}",
                "token_policies": [tenant.role]})
        else:
            bao.api("POST", f"auth/kubernetes/role/{tenant.role}", {
                "bound_service_account_names": [tenant.service_account], "audience": "vault", "token_ttl": "20m",
                "bound_service_account_namespaces": [tenant.namespace], "token_policies": [tenant.role]})
        made.append(tenant)
    return made


def process_counts(pid: int) -> tuple[int, int]:
    with open(f"/proc/{pid}/status") as status:
        threads = next(int(line.split()[1]) for line in status if line.startswith("Threads:"))
    return threads, len(os.listdir(f"/proc/{pid}/fd"))


def one_mount(daemon: Daemon, cluster: Cluster, tenants: list[Tenant], i: int) -> str:
    """Mount i: tenant i % 5; mounts 3, 13, 23... use a service account the role does not bind; mounts 7, 17,
    27... ask for the next tenant's secret with their own (valid) role. Returns the outcome."""
    tenant = tenants[i % TENANTS]
    service_account = "intruder" if i % 10 == 3 else tenant.service_account
    path = tenants[(i + 1) % TENANTS].path if i % 10 == 7 else tenant.path
    pod = PodIdentity(f"load-{i}", tenant.namespace, str(uuid.uuid5(uuid.NAMESPACE_URL, f"{RUN}/{i}")),
                      service_account)
    token = cluster.pod_token(pod.namespace, pod.service_account, pod.name, pod.uid)
    spc = vault_spc(f"- {{objectName: value, secretPath: {path}, secretKey: value}}", roleName=tenant.role,
                    vaultAuthMountPath=tenant.auth_mount)
    try:
        answer = call_mount(daemon.socket_path("vault"), build_mount_request(spc, pod, tokens={"vault": token}),
                            timeout=60)
    except grpc.RpcError as exc:
        expected = {3: grpc.StatusCode.UNAUTHENTICATED, 7: grpc.StatusCode.PERMISSION_DENIED}.get(i % 10)
        assert exc.code() == expected, f"mount {i}: {exc.code()} {exc.details()}"
        return exc.code().name
    assert i % 10 not in (3, 7), f"mount {i} should have been denied, got files"
    assert {f.path: f.contents for f in answer.files} == {"value": tenant.value.encode()}, f"mount {i}"
    return "ok"


@pytest.mark.parametrize("caching", [[], ["--vault-token-scope", "service-account", "--cache-ttl", "1m"]],
                         ids=["per-pod tokens", "shared tokens and a value cache"])
def test_200_concurrent_mounts_of_five_tenants(daemon_factory: Callable[..., Daemon], cluster: Cluster,
                                               tenants: list[Tenant], tmp_path: Path, caching: list[str]) -> None:
    # The opt-in caches key everything on the identity: they must not hand one tenant's value to another,
    # nor a value to a caller that Vault refuses (a refusal is never cached).
    daemon = daemon_factory(["vault"], ["--vault-addr", cluster.bao.address, "--max-concurrent-mounts", "8",
                                        *caching], env=daemon_env(cluster, tmp_path), log_level="warning")
    idle = process_counts(daemon.process.pid)
    with ThreadPoolExecutor(50) as pool:  # 50 callers against 8 workers: the warm-up fills every pool
        warm_up = list(pool.map(lambda i: one_mount(daemon, cluster, tenants, i), range(MOUNTS)))
    warm = process_counts(daemon.process.pid)
    with ThreadPoolExecutor(50) as pool:
        outcomes = list(pool.map(lambda i: one_mount(daemon, cluster, tenants, i), range(MOUNTS)))
    after = process_counts(daemon.process.pid)
    for round_outcomes in (warm_up, outcomes):
        assert round_outcomes.count("ok") == 160
        assert round_outcomes.count("UNAUTHENTICATED") == 20 and round_outcomes.count("PERMISSION_DENIED") == 20
    assert warm[0] <= idle[0] + 8 + 4, f"threads grew past the pools' bound: {idle[0]} idle, {warm[0]} after"
    assert after[0] <= warm[0] + 2, f"threads grew from {warm[0]} to {after[0]}"
    assert after[1] <= warm[1] + 4, f"file descriptors grew from {warm[1]} to {after[1]}"
