"""Vault through the vault_daemon's socket, called as the driver calls it, against a real OpenBao.

The official provider's e2e scenarios (facts §4) and its unit-test cases (§3) as black-box mounts:
what files, with which bytes and modes, for which SPC; and every failure fails the whole mount.
"""

from __future__ import annotations

import json
import os
import stat
import uuid
from pathlib import Path

import grpc
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from provider._proto import v1alpha1_pb2 as pb
from provider.localdriver import PodIdentity, build_mount_request, call_mount, check_response, write_payload
from tests.support.daemon import Daemon
from tests.support.openbao import (
    KV1,
    KV2,
    NAMESPACED,
    VERSIONED,
    Cluster,
    vault_spc,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "deploy" / "examples" / "vault"





def new_pod(service_account: str = "nginx-kv", namespace: str = "test") -> PodIdentity:
    return PodIdentity(f"nginx-{uuid.uuid4().hex[:6]}", namespace, str(uuid.uuid4()), service_account)


def mount(vault_daemon: Daemon, cluster: Cluster, spc: dict[str, object], pod: PodIdentity,
          audiences: tuple[str, ...] = ("vault",), **kwargs: object) -> pb.MountResponse:
    tokens = {a: cluster.pod_token(pod.namespace, pod.service_account, pod.name, pod.uid, a) for a in audiences}
    request = build_mount_request(spc, pod, tokens=tokens, **kwargs)  # type: ignore[arg-type]
    response = call_mount(vault_daemon.socket_path("vault"), request, timeout=30)
    check_response(response)
    return response


def contents(response: pb.MountResponse) -> dict[str, bytes]:
    return {f.path: f.contents for f in response.files}


def failure(vault_daemon: Daemon, cluster: Cluster, spc: dict[str, object], pod: PodIdentity,
            **kwargs: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        mount(vault_daemon, cluster, spc, pod, **kwargs)  # type: ignore[arg-type]
    return caught.value


# ------------------------------------------------------------------------------ the seed article, examples


def test_seed_article_spc_works_as_written_apart_from_the_address(vault_daemon: Daemon, cluster: Cluster,
                                                                  tmp_path: Path) -> None:
    spc = yaml.safe_load((EXAMPLES / "spc-vault-database.yaml").read_text())
    pod = new_pod("webapp-sa", "default")
    response = mount(vault_daemon, cluster, spc, pod, volume_attributes={"vaultAddress": cluster.bao.address})
    write_payload(str(tmp_path), response)
    assert (tmp_path / "db-password").read_bytes() == KV2["db-pass"]["password"].encode()
    assert stat.S_IMODE(os.stat(tmp_path / "db-password").st_mode) == 0o644
    assert [v.id for v in response.object_version] == ["db-password"]


def test_every_vault_example_mounts(vault_daemon: Daemon, cluster: Cluster) -> None:
    pod = new_pod("webapp-sa", "default")
    for path in sorted(EXAMPLES.glob("spc-*.yaml")):
        spc = next(d for d in yaml.safe_load_all(path.read_text()) if d["kind"] == "SecretProviderClass")
        audience = spc["spec"]["parameters"].get("audience", "vault")
        response = mount(vault_daemon, cluster, spc, pod, audiences=(audience,),
                         volume_attributes={"vaultAddress": cluster.bao.address})
        assert response.files, path.name
        assert all(f.contents for f in response.files), path.name


def test_pki_example_gives_a_key_that_matches_its_certificate(vault_daemon: Daemon, cluster: Cluster) -> None:
    spc = yaml.safe_load((EXAMPLES / "spc-vault-pki.yaml").read_text())
    mark = cluster.bao.audit_mark()
    response = mount(vault_daemon, cluster, spc, new_pod("webapp-sa", "default"), audiences=("vault-pki",),
                     volume_attributes={"vaultAddress": cluster.bao.address})
    files = {f.path: f for f in response.files}
    cert = x509.load_pem_x509_certificate(files["tls.crt"].contents)
    key = serialization.load_pem_private_key(files["tls.key"].contents, password=None)
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()  # type: ignore[union-attr]
    assert x509.load_pem_x509_certificate(files["ca.crt"].contents).subject == cert.issuer
    assert (files["tls.key"].mode, files["tls.crt"].mode) == (0o600, 0o644)
    assert cluster.bao.count(mark, "pki/issue/example-dot-com") == 1


# ------------------------------------------------------------------------ the official e2e scenarios (§4)


def test_inline_kv_with_file_permission(vault_daemon: Daemon, cluster: Cluster, tmp_path: Path) -> None:
    # bats 1: no vaultAddress (the vault_daemon's flag), audience vault, secret-1 0624, secret-2 default.
    spc = vault_spc("""
- objectName: "secret-1"
  secretPath: "secret/data/kv1"
  secretKey: "bar1"
  filePermission: 0624
- objectName: "secret-2"
  secretPath: "secret/data/kv2"
  secretKey: "bar2"
""", roleName="kv-role", audience="vault")
    write_payload(str(tmp_path), mount(vault_daemon, cluster, spc, new_pod()))
    assert (tmp_path / "secret-1").read_bytes() == KV2["kv1"]["bar1"].encode()
    assert (tmp_path / "secret-2").read_bytes() == KV2["kv2"]["bar2"].encode()
    assert stat.S_IMODE(os.stat(tmp_path / "..data" / "secret-1").st_mode) == 0o624
    assert stat.S_IMODE(os.stat(tmp_path / "..data" / "secret-2").st_mode) == 0o644


def test_path_forms_and_base64(vault_daemon: Daemon, cluster: Cluster) -> None:
    # bats 2: /v1/..., v1/... and an encoding: base64 value decoded.
    spc = vault_spc("""
- {objectName: pwd, secretPath: /v1/secret/data/kv-sync1, secretKey: bar1}
- {objectName: username, secretPath: v1/secret/data/kv-sync2, secretKey: bar2}
- {objectName: username_b64, secretPath: /v1/secret/data/kv-sync3, secretKey: bar3, encoding: base64}
""", roleName="kv-role")
    assert contents(mount(vault_daemon, cluster, spc, new_pod())) == {
        "pwd": b"hello-sync1", "username": b"hello-sync2", "username_b64": b"hello-sync3"}


def test_two_spcs_of_one_pod(vault_daemon: Daemon, cluster: Cluster) -> None:
    # bats 4: one pod, two volumes with their own SPCs.
    pod = new_pod()
    first = vault_spc("- {objectName: secret-1, secretPath: /secret/data/kv-sync1, secretKey: bar1}",
                      name="vault-kv-sync-1", roleName="kv-role")
    second = vault_spc("- {objectName: secret-2, secretPath: secret/data/kv-sync2, secretKey: bar2}",
                       name="vault-kv-sync-2", roleName="kv-role")
    assert contents(mount(vault_daemon, cluster, first, pod, volume_name="store-1")) == {"secret-1": b"hello-sync1"}
    assert contents(mount(vault_daemon, cluster, second, pod, volume_name="store-2")) == {"secret-2": b"hello-sync2"}


def test_pki_whole_response(vault_daemon: Daemon, cluster: Cluster) -> None:
    # bats 5: PUT with secretArgs, no secretKey: the whole response as JSON.
    spc = vault_spc("""
- objectName: certs
  secretPath: pki/issue/example-dot-com
  method: PUT
  secretArgs:
    common_name: test.example.com
    ttl: 24h
""", roleName="pki-role")
    document = json.loads(contents(mount(vault_daemon, cluster, spc, new_pod("nginx-pki")))["certs"])
    cert = x509.load_pem_x509_certificate(document["data"]["certificate"].encode())
    x509.load_pem_x509_certificate(document["data"]["issuing_ca"].encode())
    assert cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == "test.example.com"
    assert document["request_id"] == "" and list(document)[:6] == [
        "request_id", "lease_id", "lease_duration", "renewable", "data", "warnings"]


def test_objects_with_different_secret_args_get_their_own_issuance(vault_daemon: Daemon, cluster: Cluster) -> None:
    # facts §3 TestParseParametersFromYaml's two PKI objects; the official provider gives both the first cert.
    spc = vault_spc("""
- objectName: test-certs
  secretPath: pki/issue/example-dot-com
  secretKey: certificate
  secretArgs: {common_name: test.example.com, ip_sans: "127.0.0.1", exclude_cn_from_sans: true}
  method: PUT
- objectName: internal-certs
  secretPath: pki/issue/example-dot-com
  secretKey: certificate
  secretArgs: {common_name: internal.example.com}
  method: POST
""", roleName="pki-role")
    mark = cluster.bao.audit_mark()
    files = contents(mount(vault_daemon, cluster, spc, new_pod("nginx-pki")))
    names = {p: x509.load_pem_x509_certificate(c).subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
             for p, c in files.items()}
    assert names == {"test-certs": "test.example.com", "internal-certs": "internal.example.com"}
    assert cluster.bao.count(mark, "pki/issue/example-dot-com") == 2


def test_mixed_engines_with_one_role(vault_daemon: Daemon, cluster: Cluster) -> None:
    # bats 7: KV and PKI in one SPC.
    spc = vault_spc("""
- {objectName: secret-1, secretPath: secret/data/kv1, secretKey: bar1}
- {objectName: cert, secretPath: pki/issue/example-dot-com, method: PUT, secretKey: certificate,
   secretArgs: {common_name: all.example.com}}
""", roleName="all-role")
    files = contents(mount(vault_daemon, cluster, spc, new_pod("nginx-all")))
    assert files["secret-1"] == KV2["kv1"]["bar1"].encode()
    assert x509.load_pem_x509_certificate(files["cert"]).subject.rfc4514_string() == "CN=all.example.com"


@pytest.mark.parametrize(
    ("role", "mount_path"),
    [("kv-role", "kubernetes"), ("jwt-kv-role", "jwt")],
)
def test_wrong_service_account_is_denied_and_gets_nothing(vault_daemon: Daemon, cluster: Cluster, role: str,
                                                           mount_path: str) -> None:
    # bats 8: the nginx-pki service account with an SPC whose role binds nginx-kv.
    spc = vault_spc("- {objectName: secret-1, secretPath: secret/data/kv1, secretKey: bar1}", roleName=role,
                    vaultAuthMountPath=mount_path)
    pod = new_pod("nginx-pki")
    mark = cluster.bao.audit_mark()
    error = failure(vault_daemon, cluster, spc, pod)
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert f"service account test/nginx-pki (pod {pod.name})" in error.details()
    assert f"role {role!r} at auth/{mount_path}" in error.details()
    assert cluster.bao.count(mark, "secret/data/kv1") == 0


def test_vault_namespace(vault_daemon: Daemon, cluster: Cluster) -> None:
    # bats 9: the login and the read both go to the namespace.
    spc = vault_spc("- {objectName: secret-1, secretPath: secret/data/kv1, secretKey: bar1}", roleName="kv-role",
                    vaultNamespace="acceptance")
    mark = cluster.bao.audit_mark()
    assert contents(mount(vault_daemon, cluster, spc, new_pod())) == {"secret-1": NAMESPACED["kv1"]["bar1"].encode()}
    assert cluster.bao.count(mark, "auth/kubernetes/login", namespace="acceptance") == 1
    assert cluster.bao.count(mark, "secret/data/kv1", namespace="acceptance") == 1


def test_custom_audience_is_minted_through_token_request(vault_daemon: Daemon, cluster: Cluster) -> None:
    # bats 10: the driver only sends `vault` tokens, so the provider asks the TokenRequest API.
    spc = vault_spc("- {objectName: secret, secretPath: secret/data/kv-custom-audience, secretKey: bar}",
                    roleName="kv-custom-audience-role", audience="custom-audience")
    pod = new_pod()
    requests_before = len(cluster.kube.token_requests)
    assert contents(mount(vault_daemon, cluster, spc, pod)) == {"secret": KV2["kv-custom-audience"]["bar"].encode()}
    (record,) = cluster.kube.token_requests[requests_before:]
    assert (record.audiences, record.bound["uid"], record.bound["name"]) == (["custom-audience"], pod.uid, pod.name)


def test_versions_are_stable_across_pods_and_calls(vault_daemon: Daemon, cluster: Cluster) -> None:
    # bats 11 and C20: a re-created pod (new uid) and a repeated call get identical versions.
    spc = vault_spc("- {objectName: secret-1, secretPath: secret/data/kv1, secretKey: bar1}\n"
                    "- {objectName: all, secretPath: secret/data/kv2}", roleName="kv-role")
    pod = new_pod()
    first, again, recreated = (mount(vault_daemon, cluster, spc, p) for p in (pod, pod, new_pod()))
    assert first.object_version == again.object_version == recreated.object_version
    assert len({v.version for v in first.object_version}) == 2


def test_jwt_auth(vault_daemon: Daemon, cluster: Cluster) -> None:
    # bats 12
    spc = vault_spc("- {objectName: secret-1, secretPath: secret/data/kv1, secretKey: bar1}",
                    roleName="jwt-kv-role", vaultAuthMountPath="jwt")
    assert contents(mount(vault_daemon, cluster, spc, new_pod())) == {"secret-1": KV2["kv1"]["bar1"].encode()}


# ---------------------------------------------------------------------- the official unit-test cases (§3)


@pytest.mark.parametrize(
    ("secret_path", "secret_key", "extra", "expected"),
    [  # TestKeyFromData through a real KV, and the rest of what a key's file holds
        ("secret/data/typed", "count", "", b"10"),
        ("secret/data/typed", "ratio", "", b"1.5"),
        ("secret/data/typed", "enabled", "", b"true"),
        ("secret/data/typed", "nothing", "", b"null"),
        ("secret/data/typed", "nested", "", b'{"bar":"hop","baz":"zap","cheeses":{"brie":9,"cheddar":"8"}}'),
        ("secret/data/typed", "values", "", b'[6,"stilton",true]'),
        ("secret/data/typed", "html", "", KV2["typed"]["html"].encode()),
        ("kv1/app", "username", "", KV1["app"]["username"].encode()),
        ("kv1/app", "data", "", KV1["app"]["data"].encode()),  # "string data": a top-level key named data
        ("secret/data/kv-hex", "bin", "encoding: hex", bytes.fromhex(KV2["kv-hex"]["bin"])),
        ("secret/data/kv-sync3", "bar3", "encoding: BASE64", b"hello-sync3"),
        ("secret/data/kv1", "bar1", "encoding: utf-8", KV2["kv1"]["bar1"].encode()),
        (f"secret/data/{VERSIONED[0]}?version=1", "v", "", VERSIONED[1][0]["v"].encode()),
        (f"secret/data/{VERSIONED[0]}", "v", "", VERSIONED[1][-1]["v"].encode()),
    ],
)
def test_key_values(vault_daemon: Daemon, cluster: Cluster, secret_path: str, secret_key: str, extra: str,
                    expected: bytes) -> None:
    objects = f"- objectName: value\n  secretPath: {secret_path}\n  secretKey: {secret_key}\n"
    if extra:
        objects += f"  {extra}\n"
    response = mount(vault_daemon, cluster, vault_spc(objects, roleName="kv-role"), new_pod())
    assert contents(response) == {"value": expected}


def test_handle_mount_request(vault_daemon: Daemon, cluster: Cluster) -> None:
    # TestHandleMountRequest: a key, a whole response and a base64 key; stable on repeat, new on change.
    cluster.bao.bao("kv", "put", "-mount=secret", "handle-two", "the-key=secret v1 from: /v1/path/two")
    spc = vault_spc("""
- {objectName: object-one, secretPath: secret/data/kv1, secretKey: bar1}
- {objectName: object-two, secretPath: secret/data/handle-two}
- {objectName: object-three, secretPath: secret/data/kv-sync3, secretKey: bar3, encoding: base64}
""", roleName="kv-role")
    pod = new_pod()
    responses = [mount(vault_daemon, cluster, spc, pod) for _ in range(3)]
    assert all(contents(r) == contents(responses[0]) and r.object_version == responses[0].object_version
               for r in responses)
    files = contents(responses[0])
    assert [f.path for f in responses[0].files] == ["object-one", "object-two", "object-three"]
    whole = json.loads(files["object-two"])
    assert (whole["request_id"], whole["data"]["data"]) == ("", {"the-key": "secret v1 from: /v1/path/two"})
    assert (files["object-one"], files["object-three"]) == (KV2["kv1"]["bar1"].encode(), b"hello-sync3")
    versions = {v.id: v.version for v in responses[0].object_version}
    assert len(set(versions.values())) == 3 and all(versions.values())
    cluster.bao.bao("kv", "put", "-mount=secret", "handle-two", "the-key=secret v2 from: /v1/path/two")
    changed = mount(vault_daemon, cluster, spc, pod)
    new_versions = {v.id: v.version for v in changed.object_version}
    assert json.loads(contents(changed)["object-two"])["data"]["data"]["the-key"].startswith("secret v2")
    assert {k for k in versions if versions[k] != new_versions[k]} == {"object-two"}


def test_list_and_query_parameters(vault_daemon: Daemon, cluster: Cluster) -> None:
    spc = vault_spc("- {objectName: keys, secretPath: secret/metadata/, method: LIST, secretKey: keys}\n"
                    "- {objectName: listed, secretPath: 'secret/metadata?list=true', secretKey: keys}",
                    roleName="kv-role")
    files = contents(mount(vault_daemon, cluster, spc, new_pod()))
    assert files["keys"] == files["listed"]
    assert set(json.loads(files["keys"])) >= set(KV2)
