"""An SPC written for the official Vault provider mounts unchanged, through the socket, against the real
OpenBao over TLS with a client certificate, once the operator has put the TLS files in the directory the
daemon allows (deploy/ mounts the Secret or ConfigMap `secrets-store-csi-provider-tls` at /mnt/tls and passes
--allowed-files-dir=/mnt/tls). The directory is laid out as kubelet lays out a Secret volume: each file a
symbolic link through `..data` to a timestamped directory. `lint` with the daemon's flag agrees."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import yaml

from provider.cli import main
from provider.localdriver import PodIdentity, build_mount_request, call_mount, check_response
from tests.support.daemon import Daemon, start_daemon
from tests.support.openbao import KV2, TLS_SERVER_NAME, Cluster, daemon_env, vault_spc

OBJECTS = "- objectName: secret-1\n  secretPath: secret/data/kv1\n  secretKey: bar1\n"


@pytest.fixture(scope="module")
def tls_dir(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The operator's TLS directory, as kubelet writes a Secret volume with keys ca.crt, tls.crt, tls.key."""
    directory = tmp_path_factory.mktemp("mnt") / "tls"
    data = directory / "..2024_01_01_00_00_00.000000000"
    data.mkdir(parents=True)
    tls = cluster.bao.tls
    for name, source in (("ca.crt", tls.ca), ("tls.crt", tls.client_cert), ("tls.key", tls.client_key)):
        shutil.copy(source, data / name)
    (directory / "..data").symlink_to(data.name)
    for name in ("ca.crt", "tls.crt", "tls.key"):
        (directory / name).symlink_to(f"..data/{name}")
    return directory


@pytest.fixture(scope="module")
def daemon(cluster: Cluster, tls_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """The shipped DaemonSet's policy, and no TLS flags: the SPC names every TLS file itself."""
    directory = tmp_path_factory.mktemp("vault-migration")
    with start_daemon(directory / "providers", ["vault"], ["--allowed-files-dir", str(tls_dir)],
                      env=daemon_env(cluster, directory)) as running:
        yield running


def official_spc(cluster: Cluster, tls_dir: Path, **overrides: str) -> dict[str, object]:
    parameters = {
        "roleName": "kv-role",
        "vaultAddress": cluster.bao.tls_address,
        "vaultTLSServerName": TLS_SERVER_NAME,
        "vaultCACertPath": f"{tls_dir}/ca.crt",
        "vaultTLSClientCertPath": f"{tls_dir}/tls.crt",
        "vaultTLSClientKeyPath": f"{tls_dir}/tls.key",
        **overrides,
    }
    return vault_spc(OBJECTS, name="vault-kv", **parameters)


def mount(daemon: Daemon, cluster: Cluster, spc: dict[str, object]) -> dict[str, bytes]:
    pod = PodIdentity(f"nginx-kv-{uuid.uuid4().hex[:6]}", "test", str(uuid.uuid4()), "nginx-kv")
    token = cluster.pod_token(pod.namespace, pod.service_account, pod.name, pod.uid)
    response = call_mount(daemon.socket_path("vault"), build_mount_request(spc, pod, tokens={"vault": token}), 30)
    check_response(response)
    return {f.path: f.contents for f in response.files}


def test_an_official_style_spc_mounts_over_tls_unchanged(daemon: Daemon, cluster: Cluster, tls_dir: Path) -> None:
    assert mount(daemon, cluster, official_spc(cluster, tls_dir)) == {"secret-1": KV2["kv1"]["bar1"].encode()}


def test_the_ca_alone_is_enough_for_the_ca(daemon: Daemon, cluster: Cluster, tls_dir: Path) -> None:
    # Without the client certificate the TLS listener refuses the handshake: the CA file was used and trusted.
    spc = official_spc(cluster, tls_dir)
    params = spc["spec"]["parameters"]  # type: ignore[index]
    del params["vaultTLSClientCertPath"], params["vaultTLSClientKeyPath"]
    with pytest.raises(grpc.RpcError) as caught:
        mount(daemon, cluster, spc)
    assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
    assert "certificate verify failed" not in (caught.value.details() or ""), caught.value.details()


def test_a_file_outside_the_directory_is_refused_naming_flag_and_directory(daemon: Daemon, cluster: Cluster,
                                                                           tls_dir: Path) -> None:
    outside = tls_dir.parent / "elsewhere"
    outside.mkdir(exist_ok=True)
    shutil.copy(cluster.bao.tls.ca, outside / "ca.crt")
    with pytest.raises(grpc.RpcError) as caught:
        mount(daemon, cluster, official_spc(cluster, tls_dir, vaultCACertPath=f"{outside}/ca.crt"))
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert (f"vaultCACertPath must name a file under the directory set by --allowed-files-dir ({tls_dir}); "
            "put the file there") in (caught.value.details() or "")


def test_lint_with_the_daemons_flag_agrees(cluster: Cluster, tls_dir: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "spc.yaml"
    path.write_text(yaml.safe_dump(official_spc(cluster, tls_dir)))
    assert main(["lint", "--format", "json", "--allowed-files-dir", str(tls_dir), str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["problems"] == []
    assert main(["lint", "--format", "json", str(path)]) == 0  # without it: warnings, not errors
    problems = json.loads(capsys.readouterr().out)["problems"]
    assert [p["severity"] for p in problems] == ["warning"] * 3
    assert all(f"--allowed-files-dir={tls_dir}" in p["message"] for p in problems)
