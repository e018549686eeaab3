"""The opt-ins that share work between mounts, through the daemon's socket, counted in OpenBao's audit log:
`--vault-token-scope service-account` (one token per service account) and `--cache-ttl` (a short value cache).
A value read with one identity never reaches another, and a refusal is never kept.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import grpc
import pytest

from provider._proto import v1alpha1_pb2 as pb
from provider.localdriver import PodIdentity, build_mount_request, call_mount, check_response
from tests.support.daemon import Daemon
from tests.support.openbao import KV2, Cluster, daemon_env, vault_spc

KV = vault_spc("- {objectName: secret-1, secretPath: secret/data/kv1, secretKey: bar1}", roleName="kv-role")
VALUE = KV2["kv1"]["bar1"].encode()
LOGIN = "auth/kubernetes/login"
READ = "secret/data/kv1"


def new_pod(service_account: str = "nginx-kv") -> PodIdentity:
    return PodIdentity(f"nginx-{uuid.uuid4().hex[:6]}", "test", str(uuid.uuid4()), service_account)


def mount(daemon: Daemon, cluster: Cluster, pod: PodIdentity, spc: dict[str, object] = KV) -> pb.MountResponse:
    token = cluster.pod_token(pod.namespace, pod.service_account, pod.name, pod.uid)
    response = call_mount(daemon.socket_path("vault"), build_mount_request(spc, pod, tokens={"vault": token}),
                          timeout=30)
    check_response(response)
    return response


def refused(daemon: Daemon, cluster: Cluster, pod: PodIdentity, spc: dict[str, object] = KV) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as caught:
        mount(daemon, cluster, pod, spc)
    return caught.value.code()


def counts(cluster: Cluster, mark: int) -> tuple[int, int]:
    return cluster.bao.count(mark, LOGIN), cluster.bao.count(mark, READ)


def start(cluster: Cluster, daemon_factory: Callable[..., Daemon], tmp_path_factory: pytest.TempPathFactory,
          *flags: str) -> Daemon:
    env = daemon_env(cluster, tmp_path_factory.mktemp("sharing"))
    return daemon_factory(["vault"], ["--vault-addr", cluster.bao.address, *flags], env=env, log_level="info")


def test_cached_values_never_reach_another_identity(cluster: Cluster, daemon_factory: Callable[..., Daemon],
                                                    tmp_path_factory: pytest.TempPathFactory) -> None:
    daemon = start(cluster, daemon_factory, tmp_path_factory, "--vault-token-scope", "service-account",
                   "--cache-ttl", "60s")
    mark = cluster.bao.audit_mark()
    assert mount(daemon, cluster, new_pod()).files[0].contents == VALUE
    assert counts(cluster, mark) == (1, 1)
    # Another pod of the same service account and role: the same identity, served from the cache.
    assert mount(daemon, cluster, new_pod()).files[0].contents == VALUE
    assert counts(cluster, mark) == (1, 1)
    # A service account the role does not bind is refused at login, every time; nothing is read for it.
    for _ in range(2):
        assert refused(daemon, cluster, new_pod("nginx-pki")) is grpc.StatusCode.UNAUTHENTICATED
    assert counts(cluster, mark) == (3, 1)
    # The same service account with a role whose policy denies the path: a login of its own, and a read
    # that Vault refuses, asked again at every mount (a refusal is never kept).
    denied = vault_spc("- {objectName: secret-1, secretPath: secret/data/kv1, secretKey: bar1}",
                       roleName="no-policy-role")
    for _ in range(2):
        assert refused(daemon, cluster, new_pod(), denied) is grpc.StatusCode.PERMISSION_DENIED
    assert cluster.bao.count(mark, READ) == 1 + 3  # one read, then a re-login and a retry with the kept token
    # Another service account and role allowed to read it still reads it with its own token.
    mark = cluster.bao.audit_mark()
    allowed = vault_spc("- {objectName: secret-1, secretPath: secret/data/kv1, secretKey: bar1}", roleName="all-role")
    assert mount(daemon, cluster, new_pod("nginx-all"), allowed).files[0].contents == VALUE
    assert counts(cluster, mark) == (1, 1)


def test_per_pod_tokens_stay_the_default_and_keep_values_per_pod(cluster: Cluster,
                                                                 daemon_factory: Callable[..., Daemon],
                                                                 tmp_path_factory: pytest.TempPathFactory) -> None:
    daemon = start(cluster, daemon_factory, tmp_path_factory, "--cache-ttl", "1m")
    pod = new_pod()
    mark = cluster.bao.audit_mark()
    for _ in range(3):
        assert mount(daemon, cluster, pod).files[0].contents == VALUE
    assert counts(cluster, mark) == (1, 1)
    assert mount(daemon, cluster, new_pod()).files[0].contents == VALUE
    assert counts(cluster, mark) == (2, 2)


def test_service_account_scope_logs_in_once_per_service_account(cluster: Cluster,
                                                                daemon_factory: Callable[..., Daemon],
                                                                tmp_path_factory: pytest.TempPathFactory) -> None:
    daemon = start(cluster, daemon_factory, tmp_path_factory, "--vault-token-scope", "service-account")
    mark = cluster.bao.audit_mark()
    for _ in range(5):
        assert mount(daemon, cluster, new_pod()).files[0].contents == VALUE
    assert counts(cluster, mark) == (1, 5)  # no value cache: every mount reads
    allowed = vault_spc("- {objectName: secret-1, secretPath: secret/data/kv1, secretKey: bar1}", roleName="all-role")
    mount(daemon, cluster, new_pod("nginx-all"), allowed)
    assert cluster.bao.count(mark, LOGIN) == 2
