"""How the daemon reaches Vault, through its socket: TLS with a client certificate, a unix socket, and a
Vault that hangs or is sealed. OpenBao's TLS listener requires a client certificate and presents a
certificate for `vault.internal` only, signed by a CA the tests own (official client_test TestNew cases)."""

from __future__ import annotations

import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from provider.localdriver import PodIdentity, build_mount_request, call_mount, check_response
from tests.support.daemon import Daemon, start_daemon
from tests.support.openbao import KV2, TLS_SERVER_NAME, Cluster, OpenBao, daemon_env, leaks, vault_spc

OBJECTS = "- {objectName: secret-1, secretPath: secret/data/kv1, secretKey: bar1}"
EXPECTED = KV2["kv1"]["bar1"].encode()



@pytest.fixture(scope="module")
def files_dir(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The operator's --allowed-files-dir: CA files an SPC may name."""
    directory = tmp_path_factory.mktemp("vault-files")
    shutil.copy(cluster.bao.tls.ca, directory / "ca.pem")
    shutil.copy(cluster.bao.tls.other_ca, directory / "other-ca.pem")
    (directory / "cas").mkdir()
    shutil.copy(cluster.bao.tls.ca, directory / "cas" / "a.pem")
    shutil.copy(cluster.bao.tls.other_ca, directory / "cas" / "b.pem")
    (directory / "bad-cas").mkdir()
    shutil.copy(cluster.bao.tls.ca, directory / "bad-cas" / "a.pem")
    (directory / "bad-cas" / "notes.txt").write_text("not a certificate")
    return directory


@pytest.fixture(scope="module")
def daemon(cluster: Cluster, files_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """Defaults for TLS from flags: the address, CA, server name and client certificate."""
    directory = tmp_path_factory.mktemp("vault-tls")
    tls = cluster.bao.tls
    flags = ["--vault-addr", cluster.bao.tls_address, "--vault-tls-ca-cert", str(tls.ca),
             "--vault-tls-server-name", TLS_SERVER_NAME, "--vault-tls-client-cert", str(tls.client_cert),
             "--vault-tls-client-key", str(tls.client_key), "--allowed-files-dir", str(files_dir)]
    with start_daemon(directory / "providers", ["vault"], flags, env=daemon_env(cluster, directory)) as running:
        yield running


def mount_result(daemon: Daemon, cluster: Cluster, timeout: float = 30, objects: str = OBJECTS,
                 **parameters: str) -> object:
    """The file's bytes, or (status code, details) when the mount failed."""
    pod = PodIdentity(f"nginx-{uuid.uuid4().hex[:6]}", "test", str(uuid.uuid4()), "nginx-kv")
    token = cluster.pod_token(pod.namespace, pod.service_account, pod.name, pod.uid)
    request = build_mount_request(vault_spc(objects, roleName="kv-role", **parameters), pod, tokens={"vault": token})
    try:
        response = call_mount(daemon.socket_path("vault"), request, timeout=timeout)
    except grpc.RpcError as exc:
        return exc.code(), exc.details()
    check_response(response)
    return response.files[0].contents


@pytest.mark.parametrize(
    ("parameters", "expected"),
    [
        ({}, EXPECTED),  # the daemon's CA, server name and client certificate
        ({"vaultCACertPath": "other-ca.pem"}, (grpc.StatusCode.UNAVAILABLE, "certificate verify failed")),
        ({"vaultCADirectory": "cas"}, EXPECTED),
        ({"vaultCADirectory": "bad-cas"}, (grpc.StatusCode.INVALID_ARGUMENT, "vaultCADirectory file")),
        ({"vaultTLSServerName": "other.internal"}, (grpc.StatusCode.UNAVAILABLE, "Hostname mismatch")),
        ({"vaultSkipTLSVerify": "true", "vaultCACertPath": "other-ca.pem", "vaultTLSServerName": "x"}, EXPECTED),
        ({"vaultCACertPath": "../../etc/passwd"}, (grpc.StatusCode.PERMISSION_DENIED, "--allowed-files-dir")),
    ],
)
def test_tls_parameters(daemon: Daemon, cluster: Cluster, parameters: dict[str, str], expected: object) -> None:
    result = mount_result(daemon, cluster, **parameters)
    if isinstance(expected, tuple):
        assert isinstance(result, tuple) and result[0] == expected[0], result
        assert expected[1] in result[1]
    else:
        assert result == expected


def test_without_the_client_certificate_the_handshake_fails(cluster: Cluster, tmp_path: Path) -> None:
    flags = ["--vault-addr", cluster.bao.tls_address, "--vault-tls-ca-cert", str(cluster.bao.tls.ca),
             "--vault-tls-server-name", TLS_SERVER_NAME]
    with start_daemon(tmp_path / "providers", ["vault"], flags, env=daemon_env(cluster, tmp_path)) as daemon:
        result = mount_result(daemon, cluster)
    assert isinstance(result, tuple) and result[0] == grpc.StatusCode.UNAVAILABLE
    assert "TLS with Vault at" in result[1] and "client certificate" in result[1]


def test_unix_socket_address(daemon: Daemon, cluster: Cluster) -> None:
    # A Vault Agent listens on a unix socket (the official Helm chart's VAULT_ADDR=unix:///...).
    assert mount_result(daemon, cluster, vaultAddress=cluster.bao.unix_address) == EXPECTED


@pytest.fixture
def hanging_address() -> Iterator[str]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def hold() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def test_a_vault_that_never_answers(daemon: Daemon, cluster: Cluster, hanging_address: str) -> None:
    # C25: the driver's deadline is 4 s; the provider answers in time, then serves the next call normally.
    started = time.monotonic()
    result = mount_result(daemon, cluster, timeout=4, vaultAddress=hanging_address)
    assert time.monotonic() - started < 4.5
    assert isinstance(result, tuple) and result[0] == grpc.StatusCode.DEADLINE_EXCEEDED
    assert mount_result(daemon, cluster) == EXPECTED


def test_a_sealed_vault(daemon: Daemon, cluster: Cluster, tmp_path: Path) -> None:
    with OpenBao(tmp_path / "sealed") as sealed:
        sealed.seal()
        result = mount_result(daemon, cluster, vaultAddress=sealed.address)
    assert isinstance(result, tuple) and result[0] == grpc.StatusCode.UNAVAILABLE
    assert f"Vault at {sealed.address} is sealed" in result[1] and "'secret-1'" in result[1]


def test_unknown_fields_are_logged_once_with_the_nearest_name(daemon: Daemon, cluster: Cluster) -> None:
    objects = "- {objectName: secret-1, secretPath: secret/data/kv1, secretKey: bar1, filePermision: 0600}"
    for _ in range(3):
        assert mount_result(daemon, cluster, objects=objects) == EXPECTED
    lines = [line for line in daemon.logs().splitlines() if "filePermision" in line]
    assert len(lines) == 1
    assert "did you mean 'filePermission'?" in lines[0]


def test_logs_hold_no_secret_or_token(daemon: Daemon, cluster: Cluster) -> None:
    assert mount_result(daemon, cluster) == EXPECTED
    assert leaks(daemon.logs(), cluster) == []
