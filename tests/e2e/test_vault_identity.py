"""Who the provider logs in as, and how often: through the daemon's socket, counted in OpenBao's audit log.

Always the requesting pod (the driver's token, else a pod-bound TokenRequest), never the daemon's
environment; one login per pod identity until the token nears its TTL; one call per distinct request.
"""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from provider._proto import v1alpha1_pb2 as pb
from provider.localdriver import PodIdentity, build_mount_request, call_mount, check_response
from tests.support.daemon import Daemon, start_daemon
from tests.support.openbao import KV2, Cluster, daemon_env, vault_spc

KV = vault_spc("- {objectName: secret-1, secretPath: secret/data/kv1, secretKey: bar1}", roleName="kv-role")



def closed_address() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


@pytest.fixture(scope="module")
def daemon(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """The environment points at a closed port and holds the root token: the flag must win, the token unused."""
    directory = tmp_path_factory.mktemp("vault-identity")
    env = daemon_env(cluster, directory, VAULT_ADDR=closed_address(), VAULT_TOKEN=cluster.bao.root_token)
    with start_daemon(directory / "providers", ["vault"], ["--vault-addr", cluster.bao.address], env=env) as running:
        yield running


@pytest.fixture
def extra_daemon(cluster: Cluster, tmp_path: Path) -> Iterator[object]:
    started: list[Daemon] = []

    def start(*flags: str, kubeconfig: bool = True, **env: str) -> Daemon:
        daemon = start_daemon(tmp_path / f"providers{len(started)}", ["vault"], list(flags),
                              env=daemon_env(cluster, tmp_path, kubeconfig=kubeconfig, **env))
        started.append(daemon)
        daemon.wait_ready()
        return daemon

    yield start
    for daemon in started:
        daemon.stop()


def new_pod(service_account: str = "nginx-kv") -> PodIdentity:
    return PodIdentity(f"nginx-{uuid.uuid4().hex[:6]}", "test", str(uuid.uuid4()), service_account)


def mount(daemon: Daemon, cluster: Cluster, pod: PodIdentity, spc: dict[str, object] = KV,
          token: str | None = None, audience: str | None = "vault") -> pb.MountResponse:
    if audience is None:
        tokens = {}
    else:
        tokens = {audience: token or cluster.pod_token(pod.namespace, pod.service_account, pod.name, pod.uid)}
    response = call_mount(daemon.socket_path("vault"), build_mount_request(spc, pod, tokens=tokens), timeout=30)
    check_response(response)
    return response


def test_ten_mounts_of_one_pod_log_in_once(daemon: Daemon, cluster: Cluster) -> None:
    pod = new_pod()
    mark = cluster.bao.audit_mark()
    for _ in range(10):
        assert mount(daemon, cluster, pod).files[0].contents == KV2["kv1"]["bar1"].encode()
    assert cluster.bao.count(mark, "auth/kubernetes/login") <= 2
    assert cluster.bao.count(mark, "secret/data/kv1") == 10


def test_parallel_mounts_of_one_pod_share_one_login(daemon: Daemon, cluster: Cluster) -> None:
    # TestParallelCacheAccess: concurrent mounts with one identity → one cached token.
    pod = new_pod()
    mark = cluster.bao.audit_mark()
    results: list[bytes] = []
    threads = [threading.Thread(target=lambda: results.append(mount(daemon, cluster, pod).files[0].contents))
               for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [KV2["kv1"]["bar1"].encode()] * 10
    assert cluster.bao.count(mark, "auth/kubernetes/login") == 1


def test_one_call_per_distinct_request_per_mount(daemon: Daemon, cluster: Cluster) -> None:
    # Path forms that name one API path, and a repeated method, share a call; another path gets its own.
    spc = vault_spc("""
- {objectName: a, secretPath: secret/data/kv1, secretKey: bar1}
- {objectName: b, secretPath: /v1/secret/data/kv1, secretKey: bar1}
- {objectName: c, secretPath: v1/secret/data/kv1, method: GET}
- {objectName: d, secretPath: secret/data/kv2, secretKey: bar2}
- {objectName: e, secretPath: /secret/data/kv2, method: get, secretKey: bar2}
""", roleName="kv-role")
    mark = cluster.bao.audit_mark()
    files = {f.path: f.contents for f in mount(daemon, cluster, new_pod(), spc).files}
    assert files["a"] == files["b"] == KV2["kv1"]["bar1"].encode()
    assert files["d"] == files["e"] == KV2["kv2"]["bar2"].encode()
    assert (cluster.bao.count(mark, "secret/data/kv1"), cluster.bao.count(mark, "secret/data/kv2")) == (1, 1)


def test_cache_is_keyed_on_the_pod_not_on_objects_or_token(daemon: Daemon, cluster: Cluster) -> None:
    # TestCacheKeyedOnCorrectFields: more objects and a refreshed token reuse the login; a new pod uid does not.
    pod = new_pod()
    mount(daemon, cluster, pod)
    mark = cluster.bao.audit_mark()
    more = vault_spc("- {objectName: secret-1, secretPath: secret/data/kv1, secretKey: bar1}\n"
                     "- {objectName: secret-2, secretPath: secret/data/kv2, secretKey: bar2}", roleName="kv-role")
    fresh_token = cluster.pod_token(pod.namespace, pod.service_account, pod.name, pod.uid)
    assert len(mount(daemon, cluster, pod, more, token=fresh_token).files) == 2
    assert cluster.bao.count(mark, "auth/kubernetes/login") == 0
    recreated = PodIdentity(pod.name, pod.namespace, str(uuid.uuid4()), pod.service_account)
    mount(daemon, cluster, recreated)
    assert cluster.bao.count(mark, "auth/kubernetes/login") == 1


def test_a_denied_read_logs_in_again_only_once(daemon: Daemon, cluster: Cluster) -> None:
    # TestRequestSecret_OnlyAuthenticatesOnce: a fresh token → 1 login, 1 read; a cached one → 1 login, 2 reads.
    spc = vault_spc("- {objectName: secret-1, secretPath: secret/data/kv1, secretKey: bar1}",
                    roleName="no-policy-role")
    pod = new_pod()
    for reads in (1, 2):
        mark = cluster.bao.audit_mark()
        with pytest.raises(grpc.RpcError) as caught:
            mount(daemon, cluster, pod, spc)
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert (cluster.bao.count(mark, "auth/kubernetes/login"), cluster.bao.count(mark, "secret/data/kv1")) == (
            1, reads)


def test_the_environment_token_is_never_used(daemon: Daemon, cluster: Cluster) -> None:
    # The daemon's environment holds the root token; a pod the role does not bind is still refused.
    mark = cluster.bao.audit_mark()
    with pytest.raises(grpc.RpcError) as caught:
        mount(daemon, cluster, new_pod("nginx-pki"))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert cluster.bao.count(mark, "secret/data/kv1") == 0


def test_address_precedence_environment_flags_spc(cluster: Cluster, daemon: Daemon, extra_daemon) -> None:  # type: ignore[no-untyped-def]
    # TestConfigPrecedence: env alone works; the flag beats a bad env (the module daemon); the SPC beats the flag.
    env_only = extra_daemon(VAULT_ADDR=cluster.bao.address)
    assert mount(env_only, cluster, new_pod()).files[0].contents == KV2["kv1"]["bar1"].encode()
    assert mount(daemon, cluster, new_pod()).files[0].contents == KV2["kv1"]["bar1"].encode()
    spc = vault_spc("- {objectName: secret-1, secretPath: secret/data/kv1, secretKey: bar1}", roleName="kv-role",
                    vaultAddress=closed_address())
    with pytest.raises(grpc.RpcError) as caught:
        mount(daemon, cluster, new_pod(), spc)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


def test_cache_can_be_disabled(cluster: Cluster, extra_daemon) -> None:  # type: ignore[no-untyped-def]
    # TestCache_CanBeDisabled: --vault-cache-size 0 logs in on every mount.
    uncached = extra_daemon("--vault-addr", cluster.bao.address, "--vault-cache-size", "0")
    pod = new_pod()
    mark = cluster.bao.audit_mark()
    for _ in range(3):
        mount(uncached, cluster, pod)
    assert cluster.bao.count(mark, "auth/kubernetes/login") == 3


def test_no_driver_token_and_no_kubernetes_api_fails_closed(cluster: Cluster, extra_daemon) -> None:  # type: ignore[no-untyped-def]
    isolated = extra_daemon("--vault-addr", cluster.bao.address, kubeconfig=False)
    mark = cluster.bao.audit_mark()
    with pytest.raises(grpc.RpcError) as caught:
        mount(isolated, cluster, new_pod(), audience=None)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "add tokenRequests with audience 'vault' to the CSIDriver" in caught.value.details()
    assert cluster.bao.count(mark, "auth/kubernetes/login") == 0


@pytest.mark.parametrize(
    ("audience", "requested", "outcome"),
    [  # with no SPC audience the token gets the API server's default audience, which a role with
       # audience=vault refuses, as with the official provider
        ("vault", ["vault"], KV2["kv1"]["bar1"].encode()),
        ("", [], grpc.StatusCode.UNAUTHENTICATED),
    ],
)
def test_no_driver_token_uses_a_pod_bound_token_request(daemon: Daemon, cluster: Cluster, audience: str,
                                                        requested: list[str], outcome: object) -> None:
    pod = new_pod()
    spc = vault_spc("- {objectName: secret-1, secretPath: secret/data/kv1, secretKey: bar1}", roleName="kv-role",
                    **({"audience": audience} if audience else {}))
    before = len(cluster.kube.token_requests)
    try:
        result: object = mount(daemon, cluster, pod, spc, audience=None).files[0].contents
    except grpc.RpcError as exc:
        result = exc.code()
    assert result == outcome
    (record,) = cluster.kube.token_requests[before:]
    assert (record.namespace, record.service_account, record.audiences) == ("test", "nginx-kv", requested)
    assert (record.bound["name"], record.bound["uid"]) == (pod.name, pod.uid)
