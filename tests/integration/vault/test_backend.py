"""The Vault backend's plan/fetch against a real OpenBao: identity, caching, retries, failure modes."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from provider.backends.vault.backend import VaultBackend
from provider.errors import ErrorKind, ProviderError
from provider.localdriver import PodIdentity
from provider.metrics import Metrics
from tests.integration.vault.conftest import MountFn, make_backend
from tests.support.clock import FakeClock
from tests.support.openbao import KV2, Cluster, OpenBao

KV_OBJECT = "- {objectName: secret-1, secretPath: secret/data/kv1, secretKey: bar1}"


def pod(service_account: str = "nginx-kv", namespace: str = "test") -> PodIdentity:
    return PodIdentity(f"pod-{uuid.uuid4().hex[:6]}", namespace, str(uuid.uuid4()), service_account)


def error_of(call: object) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        call()  # type: ignore[operator]
    return caught.value


def test_metrics_count_logins_and_reads(backend: VaultBackend, mount: MountFn) -> None:
    metrics = Metrics(CollectorRegistry())
    counted = VaultBackend(backend.defaults, token_source=backend.token_source, metrics=metrics)
    objects = KV_OBJECT + "\n- {objectName: secret-2, secretPath: secret/data/kv2, secretKey: bar2}"
    files = mount(counted, objects, pod(), roleName="kv-role")
    assert [f.contents for f in files] == [KV2["kv1"]["bar1"].encode(), KV2["kv2"]["bar2"].encode()]
    requests = {(s.labels["operation"], s.labels["status_class"]): s.value
                for family in metrics.registry.collect() if family.name == "provider_backend_requests"
                for s in family.samples if s.name.endswith("_total")}
    assert requests == {("login", "2xx"): 1, ("read", "2xx"): 2}


def test_a_token_used_up_is_replaced_by_one_new_login(cluster: Cluster, backend: VaultBackend,
                                                      mount: MountFn) -> None:
    # Vault revokes a token after its last use: the cached token then gets 403, and one new login follows.
    cluster.bao.bao("write", "auth/jwt/role/one-use", "role_type=jwt", "user_claim=sub", "bound_audiences=vault",
                    "bound_subject=system:serviceaccount:test:nginx-kv", "token_policies=kv-policy",
                    "token_num_uses=1")
    the_pod = pod()
    mark = cluster.bao.audit_mark()
    for _ in range(3):
        files = mount(backend, KV_OBJECT, the_pod, roleName="one-use", vaultAuthMountPath="jwt")
        assert files[0].contents == KV2["kv1"]["bar1"].encode()
    assert cluster.bao.count(mark, "auth/jwt/login") == 3
    assert cluster.bao.count(mark, "secret/data/kv1") == 5  # 1 + (403, retry) + (403, retry)


def test_denied_read_logs_in_again_only_once(cluster: Cluster, backend: VaultBackend, mount: MountFn) -> None:
    # TestRequestSecret_OnlyAuthenticatesOnce: fresh token → 1 login, 1 read; cached token → 1 login, 2 reads.
    the_pod = pod()
    for expected_reads in (1, 2):
        mark = cluster.bao.audit_mark()
        error = error_of(lambda: mount(backend, KV_OBJECT, the_pod, roleName="no-policy-role"))
        assert error.kind is ErrorKind.PERMISSION_DENIED
        assert "'secret-1'" in error.message and "secret/data/kv1" in error.message
        assert "no-policy-role" in error.message and "test/nginx-kv" in error.message
        assert cluster.bao.count(mark, "auth/kubernetes/login") == 1
        assert cluster.bao.count(mark, "secret/data/kv1") == expected_reads


def test_token_is_renewed_near_its_ttl(cluster: Cluster, backend: VaultBackend, mount: MountFn) -> None:
    cluster.bao.bao("write", "auth/jwt/role/short-ttl", "role_type=jwt", "user_claim=sub", "bound_audiences=vault",
                    "bound_subject=system:serviceaccount:test:nginx-kv", "token_policies=kv-policy", "token_ttl=2s")
    clock = FakeClock()
    timed = VaultBackend(backend.defaults, token_source=backend.token_source, now=clock)
    the_pod = pod()
    mark = cluster.bao.audit_mark()
    mount(timed, KV_OBJECT, the_pod, roleName="short-ttl", vaultAuthMountPath="jwt")
    mount(timed, KV_OBJECT, the_pod, roleName="short-ttl", vaultAuthMountPath="jwt")
    assert cluster.bao.count(mark, "auth/jwt/login") == 1
    clock.advance(1.7)  # past 80% of the 2 s TTL
    mount(timed, KV_OBJECT, the_pod, roleName="short-ttl", vaultAuthMountPath="jwt")
    assert cluster.bao.count(mark, "auth/jwt/login") == 2


def test_self_minted_token_when_the_driver_sent_none(cluster: Cluster, backend: VaultBackend, mount: MountFn) -> None:
    the_pod = pod()
    files = mount(backend, "- {objectName: s, secretPath: secret/data/kv-custom-audience, secretKey: bar}",
                  the_pod, roleName="kv-custom-audience-role", audience="custom-audience")
    assert files[0].contents == KV2["kv-custom-audience"]["bar"].encode()
    record = cluster.kube.token_requests[-1]
    assert (record.namespace, record.service_account, record.audiences) == ("test", "nginx-kv", ["custom-audience"])
    assert record.bound == {"apiVersion": "v1", "kind": "Pod", "name": the_pod.name, "uid": the_pod.uid}
    assert 600 <= record.expiration_seconds <= 900


@pytest.mark.parametrize(
    ("setup", "kind", "words"),
    [
        ("no-kubeconfig", ErrorKind.UNAUTHENTICATED, "add tokenRequests with audience 'vault'"),
        ("forbidden", ErrorKind.UNAUTHENTICATED, "serviceaccounts/token"),
        ("unreachable", ErrorKind.UNAVAILABLE, "cannot reach the Kubernetes API"),
    ],
)
def test_no_token_to_be_had_fails_closed(cluster: Cluster, tmp_path: Path, mount: MountFn, setup: str,
                                         kind: ErrorKind, words: str, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = make_backend(cluster, tmp_path)
    if setup == "no-kubeconfig":
        backend.token_source = None
    elif setup == "forbidden":
        cluster.kube.forbidden.add("test/nginx-locked")
    else:
        (tmp_path / "kubeconfig").write_text((tmp_path / "kubeconfig").read_text().replace(cluster.kube.url,
                                                                                           "http://127.0.0.1:1"))
    mark = cluster.bao.audit_mark()
    error = error_of(lambda: mount(backend, KV_OBJECT, pod("nginx-locked"), driver_token=None,
                                   roleName="kv-role"))
    assert error.kind is kind
    assert words in error.message
    assert cluster.bao.count(mark, "auth/kubernetes/login") == 0  # never a login with another identity


def test_parallel_mounts_of_different_pods_do_not_mix(cluster: Cluster, backend: VaultBackend,
                                                      mount: MountFn) -> None:
    # C24: 20 pods at once, every fourth one bound to no policy; each gets its own answer.
    results: dict[int, object] = {}

    def one(index: int) -> None:
        role = "no-policy-role" if index % 4 == 0 else "kv-role"
        try:
            results[index] = mount(backend, KV_OBJECT, pod(), roleName=role)[0].contents
        except ProviderError as exc:
            results[index] = exc.kind

    threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {i: ErrorKind.PERMISSION_DENIED if i % 4 == 0 else KV2["kv1"]["bar1"].encode()
                       for i in range(20)}


@pytest.fixture
def hanging_server() -> Iterator[str]:
    """Accepts connections on 127.0.0.1 and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


def test_a_vault_that_never_answers_times_out_inside_the_deadline(backend: VaultBackend, mount: MountFn,
                                                                   hanging_server: str) -> None:
    started = time.monotonic()
    error = error_of(lambda: mount(backend, KV_OBJECT, pod(), deadline=time.monotonic() + 2.0, roleName="kv-role",
                                   vaultAddress=hanging_server))
    assert time.monotonic() - started < 2.5
    assert error.kind is ErrorKind.DEADLINE_EXCEEDED
    assert hanging_server in error.message and "'secret-1'" in error.message


def test_unreachable_vault(backend: VaultBackend, mount: MountFn) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    error = error_of(lambda: mount(backend, KV_OBJECT, pod(), roleName="kv-role", vaultAddress=closed))
    assert error.kind is ErrorKind.UNAVAILABLE
    assert f"cannot connect to Vault at {closed}" in error.message and "'secret-1'" in error.message


def test_sealed_vault(backend: VaultBackend, mount: MountFn, tmp_path: Path) -> None:
    with OpenBao(tmp_path / "sealed") as sealed:
        sealed.seal()
        error = error_of(lambda: mount(backend, KV_OBJECT, pod(), roleName="kv-role", vaultAddress=sealed.address))
    assert error.kind is ErrorKind.UNAVAILABLE
    assert f"Vault at {sealed.address} is sealed" in error.message and "'secret-1'" in error.message


def test_deadline_already_passed(backend: VaultBackend, mount: MountFn) -> None:
    error = error_of(lambda: mount(backend, KV_OBJECT, pod(), deadline=time.monotonic() - 1, roleName="kv-role"))
    assert error.kind is ErrorKind.DEADLINE_EXCEEDED
