"""The Azure backend through the daemon's socket, called as the driver calls it: the seed article's SPC
rewritten for workload identity, and every content case of the official provider's unit tests as a
black-box mount (PKCS#12 chains in every order, incomplete chains, keys of each curve, encodings,
aliases, version history). The daemon runs sandboxed with the real cloud host names leading to the fake.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from provider.backends.azure.certs import CHAIN_INCOMPLETE_WARNING
from provider.localdriver import build_mount_request, check_response, mounted_files, write_payload
from tests.support.azure_fake.daemon import SandboxedDaemon
from tests.support.azure_fake.entra import EXCHANGE_AUDIENCE
from tests.support.azure_fake.fixtures import Mounts, files_of, start_sandboxed, versions_of
from tests.support.azure_fake.pki import Chain, Issued, issue, make_chain, new_key
from tests.support.azure_fake.store import Vault
from tests.support.azure_fake.world import World

ROOT = Path(__file__).resolve().parents[2]
SEED_SPC = ROOT / "deploy" / "examples" / "azure" / "spc-azure-kvname-podid.yaml"


@pytest.fixture(scope="module")
def mounts(azure_world: World, azure_daemon: SandboxedDaemon) -> Mounts:
    return Mounts(azure_world, azure_daemon)


@pytest.fixture(scope="module")
def chains() -> dict[str, Chain]:
    return {"ec": make_chain("ec", 1, name="ec-server"), "rsa-no-ski": make_chain("rsa", 2, leaf_ski=False)}


@pytest.fixture(scope="module")
def vault(azure_world: World) -> Vault:
    return azure_world.vault("kvname-e2e")


def pem_blocks(data: bytes) -> list[bytes]:
    return [b"-----BEGIN" + part for part in data.split(b"-----BEGIN")[1:]]


# --------------------------------------------------------------------------------------- the seed SPC


def test_seed_spc_rewritten_for_workload_identity_mounts_both_files(mounts: Mounts, tmp_path: Path) -> None:
    world = mounts.world
    vault = world.vault("kvname-seed")
    secret_version = vault.set_secret("secret1", "seed-secret-value")
    key = new_key("rsa")
    key_version = vault.add_key("key1", key)
    spc = yaml.safe_load(SEED_SPC.read_text())
    params = spc["spec"]["parameters"]
    assert "usePodIdentity" not in params and params["clientID"]
    params.update({"clientID": world.wi.client_id, "keyvaultName": vault.name, "tenantId": world.tenant_id})
    pod = world.pod("busybox-secrets-store-inline-wi")
    request = build_mount_request(spc, pod, tokens={EXCHANGE_AUDIENCE: world.pod_token(pod)})
    response = mounts.call(request)
    check_response(response)
    assert write_payload(str(tmp_path), response)
    files = mounted_files(str(tmp_path))
    assert sorted(files) == ["key1", "secret1"]
    assert Path(files["secret1"]).read_bytes() == b"seed-secret-value"
    assert Path(files["key1"]).read_bytes() == key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert versions_of(response) == {"secret/secret1": secret_version, "key/key1": key_version}
    assert {f.mode for f in response.files} == {0o644}


@pytest.mark.parametrize("identity", ["workload", "service-principal", "system-assigned", "user-assigned"])
def test_every_identity_mode(mounts: Mounts, vault: Vault, identity: str) -> None:
    world = mounts.world
    vault.set_secret("who", "any identity may read me")
    params: dict[str, str] = {"keyvaultName": vault.name, "tenantID": world.tenant_id}
    secrets = None
    if identity == "workload":
        params["clientID"] = world.wi.client_id
    elif identity == "service-principal":
        secrets = {"ClientID": world.sp.client_id, "ClientSecret": world.sp_secret}  # any letter case
    else:
        params["useVMManagedIdentity"] = "true"  # IMDS: AZURE_POD_IDENTITY_AUTHORITY_HOST on the daemon
        if identity == "user-assigned":
            params["userAssignedIdentityID"] = world.user_identity.client_id
    response = mounts.mount(params, [{"objectName": "who", "objectType": "secret"}], secrets=secrets)
    assert files_of(response) == {"who": b"any identity may read me"}


# ------------------------------------------------------------------------- secrets (TestGetSecret)


@pytest.mark.parametrize(
    ("value", "encoding", "expected"),
    [
        ("secret1value", None, b"secret1value"),
        ("TestSecret1", "utf-8", b"TestSecret1"),
        ("QmFzZTY0RW5jb2RlZFN0cmluZw==", "base64", b"Base64EncodedString"),
        ("QmFzZTY0RW5jb2RlZFN0cmluZw==", "BasE64", b"Base64EncodedString"),
        ("486578456E636F646564537472696E67", "hex", b"HexEncodedString"),
        (base64.b64encode(bytes(range(256))).decode(), "base64", bytes(range(256))),
    ],
)
def test_secret_values_and_encodings(mounts: Mounts, vault: Vault, value: str, encoding: str | None,
                                     expected: bytes) -> None:
    name = f"enc-{len(value)}-{encoding or 'none'}".lower()
    version = vault.set_secret(name, value)
    obj = {"objectName": name, "objectType": "secret", **({"objectEncoding": encoding} if encoding else {})}
    response = mounts.mount(mounts.world.workload(vault.name), [obj])
    assert files_of(response) == {name: expected}
    assert versions_of(response) == {f"secret/{name}": version}


def test_aliases_and_nested_aliases(mounts: Mounts, vault: Vault) -> None:
    vault.set_secret("aliased", "v")
    objects = [{"objectName": "aliased", "objectType": "secret", "objectAlias": "secretalias"},
               {"objectName": "aliased", "objectType": "secret", "objectAlias": "nested/dir/SECRET_1"}]
    response = mounts.mount(mounts.world.workload(vault.name), objects)
    assert files_of(response) == {"secretalias": b"v", "nested/dir/SECRET_1": b"v"}
    # two objects that the official id would both call secret/aliased: the alias keeps them apart
    assert set(versions_of(response)) == {"secret/aliased@secretalias", "secret/aliased@nested/dir/SECRET_1"}


@pytest.mark.parametrize(("permission", "mode"), [("0755", 0o755), ('"0600"', 0o600), ("0400", 0o400)])
def test_file_permission(mounts: Mounts, vault: Vault, permission: str, mode: int, tmp_path: Path) -> None:
    vault.set_secret("perm", "v")
    response = mounts.mount(mounts.world.workload(vault.name),
                            [{"objectName": "perm", "objectType": "secret", "filePermission": permission}])
    assert [(f.path, f.mode) for f in response.files] == [("perm", mode)]
    write_payload(str(tmp_path), response)
    assert stat.S_IMODE(os.stat(tmp_path / "..data" / "perm").st_mode) == mode


def test_object_fields_are_trimmed(mounts: Mounts, vault: Vault) -> None:
    # TestFormatKeyVaultObject: "secret1     ", "base64   ", "  secret"
    vault.set_secret("padded", "cGFkZGVk")
    response = mounts.mount(mounts.world.workload(vault.name),
                            ['objectName: "padded     "\nobjectEncoding: "base64   "\nobjectType: "  secret"'])
    assert files_of(response) == {"padded": b"padded"}


def test_certificate_object_wraps_whatever_der_key_vault_returns(mounts: Mounts, vault: Vault) -> None:
    # TestGetCertificate: CER "test"
    version = vault.add_raw_certificate("raw-cer", b"test")
    response = mounts.mount(mounts.world.workload(vault.name), [{"objectName": "raw-cer", "objectType": "cert"}])
    assert files_of(response) == {"raw-cer": b"-----BEGIN CERTIFICATE-----\ndGVzdA==\n-----END CERTIFICATE-----\n"}
    assert versions_of(response) == {"cert/raw-cer": version}


# -------------------------------------------------------- certificates (TestDecodePKCS12, chains)


def key_der(issued: Issued) -> bytes:
    return issued.key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())


def der_blocks(data: bytes) -> list[bytes]:
    return [base64.b64decode(b"".join(block.strip().splitlines()[1:-1])) for block in pem_blocks(data)]


@pytest.mark.parametrize("others", list(itertools.permutations([1, 2])))
def test_pkcs12_key_then_chain_leaf_to_root(mounts: Mounts, vault: Vault, chains: dict[str, Chain],
                                            others: tuple[int, ...]) -> None:
    chain = chains["ec"].leaf_to_root
    name = "pfx-" + "".join(map(str, others))
    version = vault.add_certificate(name, chains["ec"].leaf.key, [chain[0], *(chain[i] for i in others)])
    response = mounts.mount(mounts.world.workload(vault.name), [{"objectName": name, "objectType": "secret"}])
    assert der_blocks(files_of(response)[name]) == [key_der(chains["ec"].leaf), *(c.der for c in chain)]
    assert versions_of(response) == {f"secret/{name}": version}


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_certificate_chains_in_every_order(mounts: Mounts, vault: Vault, chains: dict[str, Chain],
                                           order: tuple[int, ...]) -> None:
    chain = chains["ec"].leaf_to_root
    name = "chain-" + "".join(map(str, order))
    vault.add_certificate(name, None, [chain[i] for i in order])
    response = mounts.mount(mounts.world.workload(vault.name), [{"objectName": name, "objectType": "secret"}])
    assert der_blocks(files_of(response)[name]) == [c.der for c in chain]


@pytest.mark.parametrize("order", [(0, 1, 2, 3), (3, 2, 1, 0), (1, 3, 0, 2), (2, 0, 3, 1), (3, 0, 1, 2)])
def test_leaf_without_ski_in_several_orders(mounts: Mounts, vault: Vault, chains: dict[str, Chain],
                                            order: tuple[int, ...]) -> None:
    chain = chains["rsa-no-ski"].leaf_to_root  # server, intermediate2, intermediate1, root
    name = "noski-" + "".join(map(str, order))
    vault.add_certificate(name, None, [chain[i] for i in order])
    response = mounts.mount(mounts.world.workload(vault.name), [{"objectName": name, "objectType": "secret"}])
    assert der_blocks(files_of(response)[name]) == [c.der for c in chain]


def test_incomplete_chain_keeps_its_order_with_a_warning(mounts: Mounts, vault: Vault,
                                                         chains: dict[str, Chain]) -> None:
    ec = chains["ec"]
    vault.add_certificate("incomplete", ec.leaf.key, [ec.leaf, ec.root])  # no intermediate
    response = mounts.mount(mounts.world.workload(vault.name), [{"objectName": "incomplete", "objectType": "secret"}])
    assert der_blocks(files_of(response)["incomplete"]) == [key_der(ec.leaf), ec.leaf.der, ec.root.der]
    warnings = [json.loads(line) for line in mounts.daemon.logs().splitlines()
                if "certificate chain is not complete" in line]
    assert warnings and warnings[-1]["object"] == "secret/incomplete" and warnings[-1]["level"] == "warning"


@pytest.mark.parametrize(("bags", "expected"), [
    (("root", "leaf"), ("root", "leaf")),  # incomplete: the PFX's order, as the official provider writes it
    (("root", "leaf", "inter"), ("leaf", "inter", "root")),  # complete: leaf to root
], ids=["incomplete, root first", "complete, root first"])
def test_a_pfx_with_the_leaf_not_first(mounts: Mounts, vault: Vault, chains: dict[str, Chain],
                                       bags: tuple[str, ...], expected: tuple[str, ...]) -> None:
    ec = chains["ec"]
    named = {"leaf": ec.leaf, "inter": ec.intermediates[0], "root": ec.root}
    name = "leaf-not-first-" + str(len(bags))
    vault.add_certificate(name, ec.leaf.key, [ec.leaf], pfx_order=[named[n] for n in bags])
    response = mounts.mount(mounts.world.workload(vault.name), [{"objectName": name, "objectType": "secret"}])
    assert der_blocks(files_of(response)[name]) == [key_der(ec.leaf), *(named[n].der for n in expected)]
    warned = [json.loads(line)["message"] for line in mounts.daemon.logs().splitlines()
              if "certificate chain is not complete" in line and f"secret/{name}" in line]
    assert warned == ([CHAIN_INCOMPLETE_WARNING] if len(bags) == 2 else [])


def test_pem_certificate_secret_is_verbatim(mounts: Mounts, vault: Vault, chains: dict[str, Chain]) -> None:
    ec = chains["ec"]
    vault.add_certificate("pem-cert", ec.leaf.key, [ec.leaf, ec.root, *ec.intermediates],
                          content_type="application/x-pem-file")
    response = mounts.mount(mounts.world.workload(vault.name), [{"objectName": "pem-cert", "objectType": "secret"}])
    assert files_of(response)["pem-cert"] == ec.leaf.key_pem + ec.leaf.pem + ec.root.pem + ec.intermediates[0].pem


def test_pfx_as_base64_text_and_as_binary(mounts: Mounts, vault: Vault, chains: dict[str, Chain]) -> None:
    ec = chains["ec"]
    vault.add_certificate("pfx-forms", ec.leaf.key, [ec.leaf, *ec.intermediates, ec.root])
    objects = [{"objectName": "pfx-forms", "objectType": "secret", "objectFormat": "pfx", "objectAlias": "text.pfx"},
               {"objectName": "pfx-forms", "objectType": "secret", "objectFormat": "pfx", "objectEncoding": "base64",
                "objectAlias": "binary.pfx"}]
    files = files_of(mounts.mount(mounts.world.workload(vault.name), objects))
    assert base64.b64decode(files["text.pfx"]) == files["binary.pfx"]
    loaded = pkcs12.load_pkcs12(files["binary.pfx"], None)  # parseable with an empty password
    assert loaded.cert is not None and loaded.cert.certificate == ec.leaf.cert


@pytest.mark.parametrize("kind", ["rsa", "P-256", "P-384", "P-521"])
def test_keys_and_certificates_of_each_kind(mounts: Mounts, vault: Vault, kind: str) -> None:
    key = new_key(kind)
    leaf = issue(f"cert-{kind}", key)
    name = f"kc-{kind.lower()}"
    vault.add_key(name, key)
    vault.add_certificate(f"{name}-cert", key, [leaf])
    objects = [{"objectName": name, "objectType": "key"},
               {"objectName": f"{name}-cert", "objectType": "cert"},
               {"objectName": f"{name}-cert", "objectType": "secret", "objectAlias": f"{name}-secret"}]
    files = files_of(mounts.mount(mounts.world.workload(vault.name), objects))
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert files[name] == public
    assert files[f"{name}-cert"] == leaf.pem
    # TestDecodePKCS12 with one certificate: the key (PKCS#8), then the certificate
    assert der_blocks(files[f"{name}-secret"]) == [key_der(leaf), leaf.der]
    assert pem_blocks(files[f"{name}-secret"])[0].startswith(b"-----BEGIN PRIVATE KEY-----\n")


# ---------------------------------------------------------- history (TestGetLatestNKeyVaultObjects)


@pytest.fixture(scope="module")
def history(vault: Vault) -> list[str]:
    """secret `hist` with versions a..e, a the newest; created out of order to prove the sort."""
    created = {"a": 500, "b": 400, "c": 300, "d": 200, "e": 100}
    versions = {}
    for name in ("c", "a", "e", "b", "d"):
        versions[name] = vault.set_secret("hist", f"value-{name}", created=1_700_000_000 + created[name])
    return [versions[n] for n in "abcde"]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"objectVersion": "latest", "objectVersionHistory": 5}, "abcde"),
        ({"objectVersionHistory": 2}, "ab"),
        ({"objectVersionHistory": 200}, "abcde"),  # fewer versions than asked: all of them
        ({"objectVersionHistory": 3}, "abc"),  # exactly N, not N + 1
        ({"objectVersion": "{c}", "objectVersionHistory": 5}, "cde"),  # from a starting version
    ],
)
def test_version_history(mounts: Mounts, vault: Vault, history: list[str], extra: dict[str, Any],
                         expected: str) -> None:
    letters = dict(zip("abcde", history, strict=True))
    obj = {"objectName": "hist", "objectType": "secret",
           **{k: (v.format(**letters) if isinstance(v, str) else v) for k, v in extra.items()}}
    response = mounts.mount(mounts.world.workload(vault.name), [obj])
    assert files_of(response) == {f"hist/{i}": f"value-{x}".encode() for i, x in enumerate(expected)}
    assert versions_of(response) == {f"secret/hist/{i}": letters[x] for i, x in enumerate(expected)}


def test_history_skips_disabled_versions_and_uses_the_alias_folder(mounts: Mounts, vault: Vault,
                                                                   history: list[str]) -> None:
    vault.set_secret("hist2", "old", created=1_700_000_000)
    disabled = vault.set_secret("hist2", "disabled", created=1_700_000_100, enabled=False)
    vault.set_secret("hist2", "new", created=1_700_000_200)
    response = mounts.mount(mounts.world.workload(vault.name), [
        {"objectName": "hist2", "objectType": "secret", "objectAlias": "SECRET_1", "objectVersionHistory": 3}])
    assert files_of(response) == {"SECRET_1/0": b"new", "SECRET_1/1": b"old"}
    assert disabled not in versions_of(response).values()


# ------------------------------------------------------------------- daemon flags (a second daemon)


@pytest.fixture(scope="module")
def flagged(azure_world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mounts]:
    daemon = start_sandboxed(azure_world, tmp_path_factory.mktemp("azure-flags"),
                             ["--write-cert-and-key-in-separate-files", "--construct-pem-chain=false"])
    yield Mounts(azure_world, daemon)
    daemon.stop()


def test_split_files_and_original_chain_order(flagged: Mounts, vault: Vault, chains: dict[str, Chain]) -> None:
    ec = chains["ec"]
    stored = [ec.leaf, ec.root, *ec.intermediates]
    version = vault.add_certificate("split", ec.leaf.key, stored)
    vault.set_secret("plain-split", "plain")
    response = flagged.mount(flagged.world.workload(vault.name), [
        {"objectName": "split", "objectType": "secret", "objectAlias": "tls/server.pem"},
        {"objectName": "split", "objectType": "secret", "objectAlias": "server.pfx", "objectFormat": "pfx"},
        {"objectName": "plain-split", "objectType": "secret"}])
    files = files_of(response)
    chain_pem = b"".join(c.pem for c in stored)  # kept as stored: --construct-pem-chain=false
    assert files["tls/server.pem.crt"] == chain_pem
    assert files["tls/server.pem.key"] == ec.leaf.key_pem
    assert files["tls/server.pem"] == ec.leaf.key_pem + chain_pem
    assert "server.pfx.crt" not in files and "plain-split.crt" not in files
    assert [f.path for f in response.files][:3] == ["tls/server.pem.crt", "tls/server.pem.key", "tls/server.pem"]
    assert versions_of(response)["secret/split@tls/server.pem"] == version


def test_templates_combine_key_vault_objects(mounts: Mounts, vault: Vault) -> None:
    # The server's templated files (provider/templates.py) work on Azure files as on any backend's.
    vault.set_secret("db-user", "app")
    vault.set_secret("db-password", "s3cret")
    templates = ('- fileName: .pgpass\n  filePermission: "0600"\n  keepSources: false\n'
                 '  template: "db:5432:app:{{ user }}:{{ db-password }}"\n')
    response = mounts.mount(mounts.world.workload(vault.name, templates=templates),
                            [{"objectName": "db-user", "objectType": "secret", "objectAlias": "user"},
                             {"objectName": "db-password", "objectType": "secret"}])
    assert files_of(response) == {".pgpass": b"db:5432:app:app:s3cret"}
    assert [f.mode for f in response.files] == [0o600]
