"""Vault failures through the daemon's socket: each a clear message naming the object and path, the
whole mount failed (never a partial set of files), and no secret or token in any message or log line."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from provider.localdriver import PodIdentity, build_mount_request, call_mount
from tests.support.daemon import Daemon, start_daemon
from tests.support.openbao import Cluster, daemon_env, leaks, vault_spc

GOOD = "- {objectName: good, secretPath: secret/data/kv1, secretKey: bar1}\n"



@pytest.fixture(scope="module")
def daemon(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    directory = tmp_path_factory.mktemp("vault-errors")
    with start_daemon(directory / "providers", ["vault"], ["--vault-addr", cluster.bao.address],
                      env=daemon_env(cluster, directory)) as running:
        yield running


def closed_address() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


MESSAGES: list[str] = []


@pytest.mark.parametrize(
    ("objects", "parameters", "code", "words"),
    [
        (GOOD + "- {objectName: a, secretPath: secret/data/kv1, secretKey: nope}", {}, grpc.StatusCode.NOT_FOUND,
         ["object 'a'", "key 'nope' does not exist", "secretPath 'secret/data/kv1'"]),
        (GOOD + "- {objectName: a, secretPath: secret/data/kv1, secretKey: bar}", {}, grpc.StatusCode.NOT_FOUND,
         ["object 'a'", "did you mean 'bar1'?"]),
        (GOOD + "- {objectName: a, secretPath: secret/data/does-not-exist, secretKey: x}", {},
         grpc.StatusCode.NOT_FOUND, ["object 'a'", "no secret at GET /v1/secret/data/does-not-exist"]),
        (GOOD + "- {objectName: a, secretPath: pki/issue/example-dot-com, method: PUT, "
         "secretArgs: {common_name: a.example.com}}", {}, grpc.StatusCode.PERMISSION_DENIED,
         ["object 'a'", "denied PUT /v1/pki/issue/example-dot-com to role 'kv-role'", "test/nginx-kv"]),
        (GOOD + "- {objectName: m, secretPath: secret/data/marker, secretKey: value, encoding: base64}", {},
         grpc.StatusCode.INVALID_ARGUMENT, ["object 'm'", "secretPath 'secret/data/marker'", "not valid base64"]),
        (GOOD + "- {objectName: m, secretPath: secret/data/marker, secretKey: value, encoding: hex}", {},
         grpc.StatusCode.INVALID_ARGUMENT, ["object 'm'", "not valid hex"]),
        (GOOD + "- {objectName: ca, secretPath: pki/ca/pem}", {}, grpc.StatusCode.INVALID_ARGUMENT,
         ["object 'ca'", "GET /v1/pki/ca/pem", "not JSON"]),
        (GOOD + "- {objectName: a, secretPath: p\n  secretKey: [", {}, grpc.StatusCode.INVALID_ARGUMENT,
         ["'objects' is not valid YAML", "line 3"]),
        (GOOD + GOOD, {}, grpc.StatusCode.INVALID_ARGUMENT, ["the following keys were duplicated: good"]),
        ("[]", {}, grpc.StatusCode.INVALID_ARGUMENT, ["empty list"]),
        ("", {}, grpc.StatusCode.INVALID_ARGUMENT, ["no secrets configured - the provider will not read any secret"]),
        (GOOD + "- {objectName: a, secretPath: kv1/app, secretKey: nope}", {}, grpc.StatusCode.NOT_FOUND,
         ["object 'a'", "key 'nope' does not exist", "secretPath 'kv1/app'"]),
        (GOOD, {"roleName": ""}, grpc.StatusCode.INVALID_ARGUMENT, ["missing 'roleName'"]),
        (GOOD, {"vaultAuthMountPath": "kubernetes", "vaultKubernetesMountPath": "kubernetes"},
         grpc.StatusCode.INVALID_ARGUMENT, ["cannot set both vaultKubernetesMountPath and vaultAuthMountPath"]),
        (GOOD, {"vaultAuthMountPath": "nope"}, grpc.StatusCode.UNAUTHENTICATED,
         ["an auth method is enabled at auth/nope", "vaultAuthMountPath", "object 'good' was not read"]),
        (GOOD, {"roleName": "no-such-role"}, grpc.StatusCode.UNAUTHENTICATED,
         ["refused the login of service account test/nginx-kv", "role 'no-such-role'", "object 'good'"]),
        (GOOD, {"vaultAddress": "CLOSED"}, grpc.StatusCode.UNAVAILABLE,
         ["cannot connect to Vault at http://127.0.0.1:", "object 'good'"]),
        (GOOD, {"vaultCACertPath": "/etc/ssl/certs/ca-certificates.crt"}, grpc.StatusCode.PERMISSION_DENIED,
         ["vaultCACertPath names a file on the provider's disk"]),
        (GOOD, {"vaultSkipTLSVerify": "sometimes"}, grpc.StatusCode.INVALID_ARGUMENT, ["is not a boolean"]),
    ],
)
def test_failures_fail_the_whole_mount_with_a_clear_message(
    daemon: Daemon, cluster: Cluster, objects: str, parameters: dict[str, str], code: grpc.StatusCode,
    words: list[str],
) -> None:
    params = {"roleName": "kv-role"} | {k: closed_address() if v == "CLOSED" else v for k, v in parameters.items()}
    pod = PodIdentity(f"nginx-{uuid.uuid4().hex[:6]}", "test", str(uuid.uuid4()), "nginx-kv")
    token = cluster.pod_token(pod.namespace, pod.service_account, pod.name, pod.uid)
    request = build_mount_request(vault_spc(objects, **params), pod, tokens={"vault": token})
    with pytest.raises(grpc.RpcError) as caught:
        call_mount(daemon.socket_path("vault"), request, timeout=30)
    error = caught.value
    assert error.code() == code, error.details()
    for word in words:
        assert word in error.details()
    assert leaks(error.details(), cluster) == []
    MESSAGES.append(error.details())


def test_logs_hold_no_secret_or_token(daemon: Daemon, cluster: Cluster) -> None:
    assert len(MESSAGES) >= 10, "runs after the failure table"
    logs = daemon.logs()
    assert "mount failed" in logs and "logged in to Vault" in logs
    assert leaks(logs, cluster) == []
    stdout_and_files = daemon.stdout() + "".join(p.read_text(errors="replace") for p in Path(
        daemon.provider_dir).parent.glob("*.log"))
    assert leaks(stdout_and_files, cluster) == []

