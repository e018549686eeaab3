"""The operator's endpoint policy through the socket, for SPC authors and pod authors (volumeAttributes)
alike: --allowed-vault-addresses decides where a pod's token may be sent, --allowed-files-dir which files
on the provider's disk a parameter may name. A refusal names the flag that would allow it; a refused
address is never contacted; a file outside the directory is never opened (a FIFO there would hang an
open, so a prompt answer proves it); and a file inside it that is not what it should be is refused without
a byte of its contents in the message."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from provider.localdriver import build_mount_request, call_mount
from tests.hardening.conftest import Observed, new_pod, vault_mount
from tests.hardening.faultproxy import FaultProxy
from tests.support.azure_fake.daemon import SandboxedDaemon
from tests.support.azure_fake.fixtures import Mounts, files_of, start_sandboxed
from tests.support.azure_fake.server import STACK, cloud_file
from tests.support.azure_fake.world import World
from tests.support.daemon import Daemon, start_daemon
from tests.support.openbao import KV2, Cluster, daemon_env, vault_spc

OBJECTS = "- {objectName: secret-1, secretPath: secret/data/kv1, secretKey: bar1}"
EXPECTED = {"secret-1": KV2["kv1"]["bar1"].encode()}
CONTENT_MARKER = "file-content-marker-" + uuid.uuid4().hex[:10]
DENIED = grpc.StatusCode.PERMISSION_DENIED
# A refusal answers at once; a blocked open of a FIFO would last until this deadline.
DEADLINE = 5.0


class Trap:
    """A 127.0.0.1 listener that counts connections: where a refused vaultAddress points."""

    def __init__(self) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(8)
        self.server.settimeout(0.1)
        self.port = self.server.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self.server.accept()
            except OSError:
                continue
            self.connections += 1
            connection.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.server.close()


@pytest.fixture(scope="module")
def trap() -> Iterator[Trap]:
    listener = Trap()
    yield listener
    listener.stop()


@pytest.fixture(scope="module")
def operator_disk(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(--allowed-files-dir, a directory outside it). Inside: files that are not what their parameter wants,
    each holding the content marker, a FIFO, and a symbolic link that leads outside. Outside: FIFOs."""
    base = tmp_path_factory.mktemp("operator-disk")
    allowed, outside = base / "allowed", base / "outside"
    allowed.mkdir()
    outside.mkdir()
    for name in ("ca.pem", "client.pem", "client-key.pem", "cloud.json"):
        (allowed / name).write_text(f"-----BEGIN CERTIFICATE-----\n{CONTENT_MARKER}\n-----END CERTIFICATE-----\n")
    (allowed / "cas").mkdir()
    (allowed / "cas" / "a.pem").write_text(f"{CONTENT_MARKER}\n")
    os.mkfifo(allowed / "fifo.pem")
    for name in ("secret.pem", "cloud.json"):
        os.mkfifo(outside / name)
    (allowed / "out").symlink_to(outside)
    return allowed, outside


@pytest.fixture(scope="module")
def policy_daemon(cluster: Cluster, proxy: FaultProxy, operator_disk: tuple[Path, Path],
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """Allowed: the proxy in front of OpenBao, OpenBao's TLS listener and a path prefix; the daemon's own
    --vault-addr (the operator's) is OpenBao itself, and is not checked."""
    directory = tmp_path_factory.mktemp("policy-daemon")
    allowed = f"{proxy.address},{cluster.bao.tls_address},https://vault.corp.example/team-a"
    flags = ["--vault-addr", cluster.bao.address, "--allowed-vault-addresses", allowed,
             "--allowed-files-dir", str(operator_disk[0])]
    with start_daemon(directory / "providers", ["vault"], flags, env=daemon_env(cluster, directory)) as running:
        yield running


def test_the_operators_address_and_allowed_addresses_work(policy_daemon: Daemon, cluster: Cluster,
                                                          proxy: FaultProxy) -> None:
    assert vault_mount(policy_daemon, cluster, new_pod(), OBJECTS, roleName="kv-role").files == EXPECTED
    mark = proxy.mark()
    assert vault_mount(policy_daemon, cluster, new_pod(), OBJECTS, roleName="kv-role",
                       vaultAddress=proxy.address + "/").files == EXPECTED
    assert proxy.requests("/login$", since=mark), "the pod's token went to the allowed address"


@pytest.mark.parametrize("address", [
    "http://127.0.0.1:{trap}",
    "http://localhost:{trap}",
    "https://vault.corp.example/team-ab",
    "https://vault.corp.example.evil.example/team-a",
    "unix:///var/run/docker.sock",
])
@pytest.mark.parametrize("source", ["SecretProviderClass", "pod volumeAttributes"])
def test_an_address_outside_the_allowed_prefixes_is_refused_and_never_contacted(
    policy_daemon: Daemon, cluster: Cluster, proxy: FaultProxy, trap: Trap, address: str, source: str,
) -> None:
    address = address.format(trap=trap.port, proxy=proxy.port)
    before = trap.connections
    pod = new_pod()
    token = cluster.pod_token(pod.namespace, pod.service_account, pod.name, pod.uid)
    parameters = {"roleName": "kv-role", "vaultAddress": proxy.address}
    attributes = {"vaultAddress": address} if source == "pod volumeAttributes" else {}
    if not attributes:
        parameters["vaultAddress"] = address
    request = build_mount_request(vault_spc(OBJECTS, **parameters), pod, tokens={"vault": token},
                                  volume_attributes=attributes)
    with pytest.raises(grpc.RpcError) as caught:
        call_mount(policy_daemon.socket_path("vault"), request, timeout=DEADLINE)
    assert caught.value.code() is DENIED, caught.value.details()
    assert "is not allowed by this provider's --allowed-vault-addresses" in (caught.value.details() or "")
    time.sleep(0.1)
    assert trap.connections == before, "a refused address was contacted"


@pytest.mark.parametrize("parameters", [
    {"vaultCACertPath": "../outside/secret.pem"},
    {"vaultCACertPath": "out/secret.pem"},  # a symbolic link inside that leads outside
    {"vaultCACertPath": "{outside}/secret.pem"},
    {"vaultCADirectory": "out"},
    {"vaultCADirectory": "{outside}"},
    {"vaultTLSClientCertPath": "out/secret.pem", "vaultTLSClientKeyPath": "client-key.pem"},
    {"vaultTLSClientCertPath": "client.pem", "vaultTLSClientKeyPath": "../outside/secret.pem"},
])
def test_a_file_outside_the_allowed_directory_is_refused_unopened(
    policy_daemon: Daemon, cluster: Cluster, operator_disk: tuple[Path, Path], parameters: dict[str, str],
) -> None:
    outside = operator_disk[1]
    named = {k: v.format(outside=outside) for k, v in parameters.items()}
    failed = vault_mount(policy_daemon, cluster, new_pod(), OBJECTS, timeout=DEADLINE, roleName="kv-role",
                         vaultAddress=cluster.bao.tls_address, **named)
    assert failed.code is DENIED, failed.details
    assert "must name a file under the directory set by --allowed-files-dir" in failed.details
    assert any(name in failed.details for name in parameters)
    assert str(outside) not in failed.details
    assert failed.seconds < DEADLINE - 1, "answered only at the deadline: did it open the FIFO?"


@pytest.mark.parametrize(("parameters", "message"), [
    ({"vaultCACertPath": "ca.pem"}, "vaultCACertPath"),
    ({"vaultCADirectory": "cas"}, "vaultCADirectory file"),
    ({"vaultTLSClientCertPath": "client.pem", "vaultTLSClientKeyPath": "client-key.pem"}, "vaultTLSClientCertPath"),
    ({"vaultCACertPath": "fifo.pem"}, "vaultCACertPath"),
])
def test_a_file_inside_that_is_not_what_it_should_be_is_refused_without_its_contents(
    policy_daemon: Daemon, cluster: Cluster, parameters: dict[str, str], message: str,
) -> None:
    failed = vault_mount(policy_daemon, cluster, new_pod(), OBJECTS, timeout=DEADLINE, roleName="kv-role",
                         vaultAddress=cluster.bao.tls_address, **parameters)
    assert failed.code is grpc.StatusCode.INVALID_ARGUMENT, failed.details
    assert message in failed.details
    assert CONTENT_MARKER not in failed.details and CONTENT_MARKER not in policy_daemon.logs()
    assert failed.seconds < DEADLINE - 1
    # The daemon's other mounts are not held up by it.
    assert vault_mount(policy_daemon, cluster, new_pod(), OBJECTS, timeout=DEADLINE, roleName="kv-role").files


def test_without_allowed_files_dir_no_file_parameter_is_accepted(vault_daemon: Observed, cluster: Cluster) -> None:
    daemon = vault_daemon.daemon
    for name in ("vaultCACertPath", "vaultCADirectory", "vaultTLSClientCertPath"):
        parameters = {name: "/etc/ssl/certs"}
        if name == "vaultTLSClientCertPath":
            parameters["vaultTLSClientKeyPath"] = "/etc/ssl/private/key.pem"
        failed = vault_mount(daemon, cluster, new_pod(), OBJECTS, roleName="kv-role", **parameters)
        assert failed.code is DENIED, failed.details
        assert f"{name} names a file on the provider's disk" in failed.details
        assert "the operator can allow a directory with --allowed-files-dir" in failed.details


# ------------------------------------------------------------------------------------------------ Azure
@pytest.fixture(scope="module")
def azure(azure_world: World, operator_disk: tuple[Path, Path],
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mounts]:
    daemon: SandboxedDaemon = start_sandboxed(azure_world, tmp_path_factory.mktemp("azure-policy"),
                                              ["--allowed-files-dir", str(operator_disk[0])])
    yield Mounts(azure_world, daemon)
    daemon.stop()


@pytest.mark.parametrize(("cloud_env_file", "code", "message"), [
    ("../outside/cloud.json", DENIED, "cloudEnvFileName must name a file under the directory set by "
                                      "--allowed-files-dir"),
    ("out/cloud.json", DENIED, "cloudEnvFileName must name a file under the directory set by --allowed-files-dir"),
    ("{outside}/cloud.json", DENIED, "cloudEnvFileName must name a file under the directory set by "
                                     "--allowed-files-dir"),
    ("cloud.json", grpc.StatusCode.INVALID_ARGUMENT, "is not a JSON object"),
    ("fifo.pem", grpc.StatusCode.INVALID_ARGUMENT, "is not a regular file"),
])
def test_cloud_env_files(azure: Mounts, operator_disk: tuple[Path, Path], cloud_env_file: str,
                         code: grpc.StatusCode, message: str) -> None:
    world = azure.world
    vault = world.vault(f"kv-policy-{uuid.uuid4().hex[:6]}", STACK)
    vault.set_secret("secret1", "stack")
    params = world.workload(vault.name, cloudName="AzureStackCloud",
                            cloudEnvFileName=cloud_env_file.format(outside=operator_disk[1]))
    started = time.monotonic()
    failure = azure.error(params, [{"objectName": "secret1", "objectType": "secret"}], timeout=DEADLINE)
    assert failure.code() is code and message in (failure.details() or ""), failure.details()
    assert CONTENT_MARKER not in (failure.details() or "") and str(operator_disk[1]) not in (failure.details() or "")
    assert time.monotonic() - started < DEADLINE - 1
    good = cloud_file(operator_disk[0], STACK).name  # a real cloud file there works
    assert files_of(azure.mount({**params, "cloudEnvFileName": good},
                                [{"objectName": "secret1", "objectType": "secret"}])) == {"secret1": b"stack"}


@pytest.mark.parametrize("missing", ["csi.storage.k8s.io/pod.name", "csi.storage.k8s.io/pod.namespace",
                                     "csi.storage.k8s.io/pod.uid", "csi.storage.k8s.io/serviceAccount.name"])
def test_vault_without_pod_info_fails_closed_before_any_request(policy_daemon: Daemon, cluster: Cluster,
                                                                proxy: FaultProxy, missing: str) -> None:
    # A CSIDriver without podInfoOnMount: kubelet sends no pod keys, so there is no pod to log in as.
    pod = new_pod()
    token = cluster.pod_token(pod.namespace, pod.service_account, pod.name, pod.uid)
    request = build_mount_request(vault_spc(OBJECTS, roleName="kv-role", vaultAddress=proxy.address), pod,
                                  tokens={"vault": token})
    attributes = json.loads(request.attributes)
    del attributes[missing]
    request.attributes = json.dumps(attributes)
    mark = proxy.mark()
    with pytest.raises(grpc.RpcError) as caught:
        call_mount(policy_daemon.socket_path("vault"), request, timeout=DEADLINE)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "the CSIDriver needs podInfoOnMount: true" in (caught.value.details() or "")
    assert proxy.requests(since=mark) == [], "a request left the provider without a pod to act for"


@pytest.fixture(scope="module")
def no_node_identity(azure_world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mounts]:
    daemon: SandboxedDaemon = start_sandboxed(azure_world, tmp_path_factory.mktemp("azure-no-node-identity"),
                                              ["--deny-node-identity"])
    yield Mounts(azure_world, daemon)
    daemon.stop()


@pytest.mark.parametrize("user_assigned", [False, True])
def test_deny_node_identity_refuses_the_node_identity_before_asking_imds(no_node_identity: Mounts,
                                                                         user_assigned: bool) -> None:
    world = no_node_identity.world
    vault = world.vault(f"kv-node-{uuid.uuid4().hex[:6]}")
    vault.set_secret("secret1", "node identity value")
    objects = [{"objectName": "secret1", "objectType": "secret"}]
    params = {"keyvaultName": vault.name, "tenantID": world.tenant_id, "useVMManagedIdentity": "true"}
    if user_assigned:
        params["userAssignedIdentityID"] = world.user_identity.client_id
    asked_before = len(world.fake.records("^/metadata/identity/oauth2/token"))
    failure = no_node_identity.error(params, objects, timeout=DEADLINE)
    assert failure.code() is DENIED, failure.details()
    assert "useVMManagedIdentity asks for the node's managed identity" in (failure.details() or "")
    assert "--deny-node-identity" in (failure.details() or "")
    assert len(world.fake.records("^/metadata/identity/oauth2/token")) == asked_before, "IMDS was asked"
    workload = world.workload(vault.name)  # the pod's own identity still works
    assert files_of(no_node_identity.mount(workload, objects)) == {"secret1": b"node identity value"}
