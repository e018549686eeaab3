"""The driver's own retries, through the sockets: a Mount that fails reaches the client trailers-only, so
a client with the driver's exact service config (tests/support/driver_client.py) attempts an UNAVAILABLE
mount 3 times within one call and every other failure exactly once. Attempts are counted on the
provider's side: the mounts metric, and for Vault the requests the real OpenBao behind the proxy saw."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from provider.localdriver import PodIdentity, build_mount_request
from tests.hardening.conftest import Observed, new_pod, serve_flags
from tests.hardening.faultproxy import FaultProxy
from tests.support.daemon import start_daemon
from tests.support.driver_client import DRIVER_MAX_ATTEMPTS, driver_mount
from tests.support.openbao import KV2, Cluster, vault_spc

POD = PodIdentity.named("web-0", "shop", "web")
OBJECTS = "- {objectName: secret-1, secretPath: secret/data/kv1, secretKey: bar1}"
LOGIN = r"^/v1/auth/kubernetes/login$"


def mounts_counted(observed: Observed, backend: str, kind: str) -> float:
    for family in text_string_to_metric_families(observed.metrics()):
        for sample in family.samples:
            if sample.name == "provider_mounts_total" and sample.labels == {"backend": backend, "error_kind": kind}:
                return sample.value
    return 0.0


def attempts(observed: Observed, backend: str, kind: str, call: object) -> tuple[grpc.RpcError, float]:
    """Make the call, which must fail; its error and how many mounts the provider answered with `kind`."""
    before = mounts_counted(observed, backend, kind)
    with pytest.raises(grpc.RpcError) as caught:
        call()  # type: ignore[operator]
    return caught.value, mounts_counted(observed, backend, kind) - before


@pytest.fixture(scope="module")
def test_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Observed]:
    directory = tmp_path_factory.mktemp("driver-retries")
    audit = directory / "audit.log"
    with start_daemon(directory / "providers", ["test"], serve_flags(audit), log_level="info") as running:
        yield Observed(running, audit)


def scripted_spc(**parameters: str) -> dict[str, object]:
    return {"kind": "SecretProviderClass", "metadata": {"name": "retries"},
            "spec": {"provider": "test", "parameters": parameters}}


TOO_LARGE = yaml.safe_dump([{"objectName": "big", "value": "x", "repeat": 5 * 1024 * 1024}])

# (id, SPC parameters, the mount's deadline, the code, its ErrorKind, the attempts in one call)
CASES: list[tuple[str, dict[str, str], float, grpc.StatusCode, str, int]] = [
    ("backend unavailable", {"failWith": "UNAVAILABLE"}, 30, grpc.StatusCode.UNAVAILABLE, "Unavailable",
     DRIVER_MAX_ATTEMPTS),
    ("SPC does not parse", {"objects": "- objectName: [unclosed"}, 30, grpc.StatusCode.INVALID_ARGUMENT,
     "InvalidArgument", 1),
    ("backend says invalid", {"failWith": "INVALID_ARGUMENT"}, 30, grpc.StatusCode.INVALID_ARGUMENT,
     "InvalidArgument", 1),
    ("not found", {"failWith": "NOT_FOUND"}, 30, grpc.StatusCode.NOT_FOUND, "NotFound", 1),
    ("permission denied", {"failWith": "PERMISSION_DENIED"}, 30, grpc.StatusCode.PERMISSION_DENIED,
     "PermissionDenied", 1),
    ("no token for the audience", {"requireAudience": "vault"}, 30, grpc.StatusCode.UNAUTHENTICATED,
     "Unauthenticated", 1),
    ("backend says deadline", {"failWith": "DEADLINE_EXCEEDED"}, 30, grpc.StatusCode.DEADLINE_EXCEEDED,
     "DeadlineExceeded", 1),
    ("the mount's deadline passes", {"objects": "[{objectName: a, value: b}]", "delaySeconds": "30"}, 2,
     grpc.StatusCode.DEADLINE_EXCEEDED, "DeadlineExceeded", 1),
    ("a bug", {"crash": "true"}, 30, grpc.StatusCode.INTERNAL, "Internal", 1),
    ("backend says internal", {"failWith": "INTERNAL"}, 30, grpc.StatusCode.INTERNAL, "Internal", 1),
    ("files too large", {"objects": TOO_LARGE}, 30, grpc.StatusCode.RESOURCE_EXHAUSTED, "ResourceExhausted", 1),
    ("backend not built", {"failWith": "UNIMPLEMENTED"}, 30, grpc.StatusCode.UNIMPLEMENTED, "Unimplemented", 1),
]


@pytest.mark.parametrize(("parameters", "timeout", "code", "kind", "expected"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_only_unavailable_is_attempted_again_within_the_call(
    test_daemon: Observed, parameters: dict[str, str], timeout: float, code: grpc.StatusCode, kind: str,
    expected: int,
) -> None:
    request = build_mount_request(scripted_spc(**parameters), POD)
    error, counted = attempts(test_daemon, "test", kind,
                              lambda: driver_mount(test_daemon.daemon.socket_path("test"), request, timeout))
    assert error.code() is code, error.details()
    assert counted == expected
    assert error.details(), "the message reaches the driver with the status"


def test_the_details_are_the_provider_message(test_daemon: Observed) -> None:
    request = build_mount_request(scripted_spc(failWith="UNAVAILABLE"), POD)
    error, _ = attempts(test_daemon, "test", "Unavailable",
                        lambda: driver_mount(test_daemon.daemon.socket_path("test"), request, 30))
    assert error.details() == "planted UNAVAILABLE failure"


def test_a_mount_that_succeeds_is_attempted_once(test_daemon: Observed) -> None:
    request = build_mount_request(scripted_spc(objects="[{objectName: a, value: b}]"), POD)
    before = mounts_counted(test_daemon, "test", "")
    answer = driver_mount(test_daemon.daemon.socket_path("test"), request, 30)
    assert [(f.path, f.contents) for f in answer.files] == [("a", b"b")]
    assert mounts_counted(test_daemon, "test", "") - before == 1


# ------------------------------------------------------------------------------------------------ Vault


def vault_request(cluster: Cluster, pod: PodIdentity, **parameters: str) -> object:
    jwt = cluster.pod_token(pod.namespace, pod.service_account, pod.name, pod.uid)
    return build_mount_request(vault_spc(OBJECTS, **parameters), pod, tokens={"vault": jwt})


def test_vault_unreachable_is_attempted_three_times(vault_daemon: Observed, cluster: Cluster,
                                                    proxy: FaultProxy) -> None:
    request = vault_request(cluster, new_pod(), roleName="kv-role", vaultAddress=proxy.address)
    proxy.close()
    try:
        error, counted = attempts(vault_daemon, "vault", "Unavailable",
                                  lambda: driver_mount(vault_daemon.daemon.socket_path("vault"), request, 30))
    finally:
        proxy.clear()
    assert error.code() is grpc.StatusCode.UNAVAILABLE
    assert error.details().startswith("cannot connect to Vault at ")
    assert counted == DRIVER_MAX_ATTEMPTS


def test_vault_500_at_login_is_sent_once_per_attempt(vault_daemon: Observed, cluster: Cluster,
                                                     proxy: FaultProxy) -> None:
    request = vault_request(cluster, new_pod(), roleName="kv-role", vaultAddress=proxy.address)
    mark = proxy.mark()
    proxy.inject("status", path=LOGIN, status=500)
    try:
        error, counted = attempts(vault_daemon, "vault", "Unavailable",
                                  lambda: driver_mount(vault_daemon.daemon.socket_path("vault"), request, 30))
    finally:
        proxy.clear()
    assert error.code() is grpc.StatusCode.UNAVAILABLE
    assert counted == DRIVER_MAX_ATTEMPTS
    assert len(proxy.requests(LOGIN, method="POST", since=mark)) == DRIVER_MAX_ATTEMPTS  # one login an attempt


def test_vault_refusal_is_attempted_once_and_recovery_needs_no_retry(vault_daemon: Observed, cluster: Cluster,
                                                                     proxy: FaultProxy) -> None:
    pod = new_pod()
    mark = proxy.mark()
    refused = vault_request(cluster, pod, roleName="db-role", vaultAddress=proxy.address)  # not bound to this SA
    with pytest.raises(grpc.RpcError) as caught:
        driver_mount(vault_daemon.daemon.socket_path("vault"), refused, 30)
    assert caught.value.code() is not grpc.StatusCode.UNAVAILABLE, caught.value.details()
    assert len(proxy.requests(LOGIN, method="POST", since=mark)) == 1
    answer = driver_mount(vault_daemon.daemon.socket_path("vault"),
                          vault_request(cluster, pod, roleName="kv-role", vaultAddress=proxy.address), 30)
    assert {f.path: f.contents for f in answer.files} == {"secret-1": KV2["kv1"]["bar1"].encode()}


def test_driver_client_settings_are_the_drivers() -> None:
    # The values of provider_client.go's ServiceConfig; a change here must be a change in the driver.
    from tests.support.driver_client import DRIVER_SERVICE_CONFIG

    (method,) = DRIVER_SERVICE_CONFIG["methodConfig"]
    assert method == {
        "name": [{"service": "v1alpha1.CSIDriverProvider"}],
        "waitForReady": True,
        "retryPolicy": {"maxAttempts": 3, "initialBackoff": "1s", "maxBackoff": "10s", "backoffMultiplier": 1.1,
                        "retryableStatusCodes": ["UNAVAILABLE"]},
    }

