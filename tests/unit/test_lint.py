"""`lint`: offline checks of SPC manifests, one line per problem, exit 1 on errors, --format json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from provider.backends import create_backend
from provider.cli import build_parser, main
from provider.contract import lint_mount, plan_mount
from provider.errors import ProviderError
from provider.localdriver import PodIdentity, build_mount_request
from provider.request import MountContext, parse_mount_request

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(str(p) for p in (ROOT / "deploy" / "examples").rglob("*.yaml"))


def spc(name: str, provider: str, **parameters: str) -> dict[str, object]:
    return {"apiVersion": "secrets-store.csi.x-k8s.io/v1", "kind": "SecretProviderClass",
            "metadata": {"name": name}, "spec": {"provider": provider, "parameters": parameters}}


def write(tmp_path: Path, *documents: dict[str, object]) -> str:
    path = tmp_path / "spcs.yaml"
    path.write_text(yaml.safe_dump_all(documents))
    return str(path)


def test_every_shipped_example_is_clean(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lint", *EXAMPLES]) == 0
    assert " 0 error(s)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (spc("no-params", "vault"), "parameters not set"),
        (spc("other", "gcp", a="b"), "spec.provider 'gcp' is not served here"),
        (spc("v", "vault", objects="- objectName: a\n  secretPath: x\n"), "roleName"),
        (spc("v", "vault", roleName="r", objects="- objectName: ../a\n  secretPath: x\n"), "'..'"),
        (spc("v", "vault", roleName="r", objects="- objectName: a\n  secretPath: x\n  encoding: utf-16\n"),
         "encoding"),
        (spc("v", "vault", roleName="r", objects="- objectName: a\n  secretPath: x\n",
             templates="- fileName: t\n  template: '{{ a | exec }}'\n"), "unknown filter 'exec'"),
        (spc("v", "vault", roleName="r", objects="- objectName: a\n  secretPath: x\n",
             templates="- fileName: ../escape\n  template: '{{ a }}'\n"), "fileName '../escape' has a '..' element"),
        (spc("a", "azure", keyvaultName="kv", tenantID="t",
             objects="array:\n  - |\n    objectName: s\n    objectType: secret\n    objectFormat: pkcs\n"),
         "invalid objectFormat: pkcs"),
        (spc("a", "azure", keyvaultName="kv_bad!", tenantID="t", clientID="c",
             objects="array:\n  - |\n    objectName: s\n    objectType: secret\n"), "kv_bad!"),
    ],
)
def test_problems_are_reported_with_file_and_spc(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 document: dict[str, object], expected: str) -> None:
    path = write(tmp_path, document)
    assert main(["lint", path]) == 1
    out = capsys.readouterr().out
    error_lines = [line for line in out.splitlines() if ": error: " in line]
    assert error_lines and all(line.startswith(f"{path}: ") for line in error_lines)
    assert any(expected in line for line in error_lines), out


def test_an_identity_binding_spc_is_clean(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    document = spc("ib", "azure", useAzureTokenProxy="true", clientID="00000000-0000-0000-0000-000000000000",
                   keyvaultName="kvname", tenantId="11111111-1111-1111-1111-111111111111",
                   objects="array:\n  - |\n    objectName: s\n    objectType: secret\n")
    assert main(["lint", write(tmp_path, document)]) == 0
    assert "0 error(s), 0 warning(s)" in capsys.readouterr().out


def test_json_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = spc("good", "vault", roleName="r", objects="- objectName: a\n  secretPath: secret/data/a\n")
    bad = spc("bad", "vault", objects="- objectName: a\n  secretPath: x\n")
    path = write(tmp_path, good, bad, {"kind": "Pod", "metadata": {"name": "p"}})
    assert main(["lint", "--format", "json", path]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["files"] == 1
    assert [(p["spc"], p["severity"]) for p in report["problems"]] == [("bad", "error")]
    assert set(report["problems"][0]) == {"file", "spc", "object", "severity", "message"}


def test_unreadable_and_empty_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "broken.yaml").write_text("a: [unclosed")
    (tmp_path / "pod.yaml").write_text("kind: Pod\n")
    assert main(["lint", str(tmp_path / "broken.yaml"), str(tmp_path / "pod.yaml"), str(tmp_path / "nope.yaml")]) == 1
    out = capsys.readouterr().out
    assert "broken.yaml: <unnamed>: error: cannot read the manifest" in out
    assert "pod.yaml: <unnamed>: warning: no SecretProviderClass" in out
    assert "nope.yaml: <unnamed>: error: cannot read the manifest" in out


# ------------------------------------------------------------------ every finding of each backend, at once

def lint_json(tmp_path: Path, capsys: pytest.CaptureFixture[str],
              *documents: dict[str, object]) -> list[dict[str, str]]:
    main(["lint", "--format", "json", write(tmp_path, *documents)])
    problems: list[dict[str, str]] = json.loads(capsys.readouterr().out)["problems"]
    return problems


def vault(objects: str, **parameters: str) -> dict[str, object]:
    return spc("v", "vault", **{"roleName": "r", "objects": objects, **parameters})


def azure(*elements: str, **parameters: str) -> dict[str, object]:
    array = "array:\n" + "".join("  - |\n" + "".join(f"    {line}\n" for line in e.split(";")) for e in elements)
    return spc("a", "azure", **{"keyvaultName": "kv1", "tenantID": "t", "clientID": "c", "objects": array,
                                **parameters})


GOOD_VAULT = "- {objectName: a, secretPath: secret/data/a, secretKey: k}\n"
GOOD_AZURE = "objectName: s;objectType: secret"


VAULT_TABLE = [  # SPC → (object, severity, part of the message)
    (vault(GOOD_VAULT, vaultAdress="http://v:1"),
     ("", "warning", "unknown parameter 'vaultAdress' is ignored; did you mean 'vaultAddress'?")),
    (vault(GOOD_VAULT, somethingElse="x"), ("", "warning", "unknown parameter 'somethingElse' is ignored")),
    (vault(GOOD_VAULT, vaultCAPem="x"), ("", "warning", "parameter 'vaultCAPem' is ignored")),
    (spc("v", "vault", objects=GOOD_VAULT), ("", "error", "missing 'roleName'")),
    (vault(GOOD_VAULT, vaultAuthMountPath="a", vaultKubernetesMountPath="b"), ("", "error", "cannot set both")),
    (vault(GOOD_VAULT, vaultAddress="vault:8200"), ("", "error", "is not a Vault URL")),
    (vault("- {objectName: a, secretPath: p, filePermision: 0600}"),
     ("a", "warning", "unknown field 'filePermision' of object 'a' is ignored; did you mean 'filePermission'?")),
    (vault("- {objectName: a, objectPath: p}"), ("a", "error", "objectPath was renamed secretPath")),
    (vault("- {objectName: a, objectPath: p}"), ("a", "warning", "did you mean 'secretPath'?")),
    (vault("- {secretPath: p}"), ("#1", "error", "object #1 has no objectName")),
    (vault("- {objectName: a}"), ("a", "error", "object 'a' has no secretPath")),
    (vault("- {objectName: a/../b, secretPath: p}"), ("a/../b", "error", "objectName has a '..' element")),
    (vault("- {objectName: ./a, secretPath: p}"), ("./a", "error", "is not a clean path")),
    (vault("- {objectName: a, secretPath: p}\n- {objectName: a, secretPath: q}"),
     ("a", "error", "the following keys were duplicated: a")),
    (vault("- {objectName: a, secretPath: p}\n- {objectName: a/b, secretPath: q}"),
     ("a/b", "error", "object 'a' writes the file 'a', but object 'a/b' needs 'a' to be a directory")),
    (vault("- {objectName: a, secretPath: p, secretKey: k, encoding: b64}"),
     ("a", "error", "invalid encoding type 'b64'")),
    (vault("- {objectName: a, secretPath: p, encoding: hex}"),
     ("a", "warning", "encoding of object 'a' is ignored")),
    (vault("- {objectName: a, secretPath: p, method: DELETE}"), ("a", "error", "method 'DELETE' is not supported")),
    (vault("- {objectName: a, secretPath: p, filePermission: rw}"), ("a", "error", "filePermission must be")),
    (vault("- {objectName: a, secretPath: p, filePermission: 0999}"), ("a", "error", "outside the file mode")),
    (vault("- {objectName: a, secretPath: p, secretArgs: [x]}"), ("a", "error", "secretArgs must be a map")),
    (vault("- {objectName: a, secretPath: 'p?a=%zz'}"), ("a", "error", "failed to parse query parameters")),
    (vault("- just a string"), ("#1", "error", "object #1 must be a mapping")),
]


@pytest.mark.parametrize(("document", "expected"), VAULT_TABLE)
def test_vault_findings(tmp_path: Path, capsys: pytest.CaptureFixture[str], document: dict[str, object],
                        expected: tuple[str, str, str]) -> None:
    problems = lint_json(tmp_path, capsys, document)
    found = [(p["object"], p["severity"], p["message"]) for p in problems]
    assert any(o == expected[0] and s == expected[1] and expected[2] in m for o, s, m in found), found


AZURE_TABLE = [
    (azure(GOOD_AZURE, keyvaultname="kv"),
     ("", "warning", "unknown parameter 'keyvaultname' is ignored; did you mean 'keyvaultName'?")),
    (azure(GOOD_AZURE, resourceGroup="rg"), ("", "warning", "parameter 'resourceGroup' is ignored")),
    (azure(GOOD_AZURE, keyvaultName=""), ("", "error", "keyvaultName is not provided")),
    (azure(GOOD_AZURE, tenantID=""), ("", "error", "tenantId is not provided")),
    (azure(GOOD_AZURE, useVMManagedIdentity="maybe"), ("", "error", "failed to parse useVMManagedIdentity")),
    (azure(GOOD_AZURE, useAzureTokenProxy="true", clientID=""),
     ("", "error", "clientID is required for identity binding (useAzureTokenProxy)")),
    (azure(GOOD_AZURE, useAzureTokenProxy="true", useVMManagedIdentity="true", clientID="c"),
     ("", "error", "only one identity mode can be enabled at a time")),
    (azure(GOOD_AZURE, keyvaultName="kv_bad!"), ("", "error", "'kv_bad!' is not a valid vault name")),
    (azure("objectName: s;objectType: secrets"), ("s", "error", "invalid objectType 'secrets'")),
    (azure("objectName: s;objectType: secret;objectFormat: pkcs"), ("s", "error", "invalid objectFormat: pkcs")),
    (azure("objectName: s;objectType: key;objectFormat: pfx"), ("s", "error", "PFX format only supported")),
    (azure("objectName: s;objectType: secret;objectEncoding: utf-16"), ("s", "error", "invalid objectEncoding")),
    (azure("objectName: s;objectType: secret;filePermission: 0900"), ("s", "error", "filePermission '0900'")),
    (azure("objectName: s;objectType: secret;objectVersionHistory: many"), ("s", "error", "whole number")),
    (azure("objectName: s;objectType: secret;objectAlais: x"),
     ("s", "warning", "unknown field 'objectAlais' is ignored; did you mean 'objectAlias'?")),
    (azure("objectType: secret"), ("#0", "error", "file name must not be empty")),
    (azure("objectName: s;objectType: secret;objectAlias: ./x"), ("s", "error", "is not a clean path")),
    (azure("objectName: s;objectType: secret;objectAlias: /x"), ("s", "error", "must be a relative path")),
    (azure("objectName: s_1;objectType: secret"), ("s_1", "error", "objectName must be the Key Vault name")),
    (azure(GOOD_AZURE, GOOD_AZURE), ("s", "error", "both write 's'")),
    (azure(GOOD_AZURE, "objectName: t;objectType: secret;objectAlias: s/t"),
     ("t", "error", "writes the file 's', but object 1 (secret 't') needs it to be a directory")),
    (azure("objectName: s;objectType: secret;keyvaultName: kv_2"),
     ("s", "error", "object 0 (secret 's'): keyvaultName 'kv_2' is not a valid vault name")),
    (azure("objectName: s;objectType: secret;objectFormat: pkcs;objectEncoding: rot13"),
     ("s", "error", "invalid objectEncoding: rot13")),
]


@pytest.mark.parametrize(("document", "expected"), AZURE_TABLE)
def test_azure_findings(tmp_path: Path, capsys: pytest.CaptureFixture[str], document: dict[str, object],
                        expected: tuple[str, str, str]) -> None:
    problems = lint_json(tmp_path, capsys, document)
    found = [(p["object"], p["severity"], p["message"]) for p in problems]
    assert any(o == expected[0] and s == expected[1] and expected[2] in m for o, s, m in found), found


@pytest.mark.parametrize(
    ("document", "errors", "warnings"),
    [
        (vault("- {objectName: a, secretPath: p, method: DELETE, encoding: b64, filePermission: rw, secretkey: k}\n"
               "- {objectName: ../b}\n- {secretPath: c}\n- {objectName: d, secretPath: d}", vaultAdress="x"),
         {"a": 3, "../b": 2, "#3": 1}, {"": 1, "a": 1}),
        (azure("objectName: s;objectType: secrets;objectFormat: pkcs;filePermission: 9",
               "objectName: t;objectType: secret;objectAlias: /t;objectVersionHistory: x",
               GOOD_AZURE, tenantID=""),
         {"": 1, "s": 3, "t": 2}, {}),
    ],
)
def test_every_problem_is_reported_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           document: dict[str, object], errors: dict[str, int],
                                           warnings: dict[str, int]) -> None:
    problems = lint_json(tmp_path, capsys, document)
    counted: dict[str, dict[str, int]] = {"error": {}, "warning": {}}
    for p in problems:
        counted[p["severity"]][p["object"]] = counted[p["severity"]].get(p["object"], 0) + 1
    assert counted == {"error": errors, "warning": warnings}


def mount_context(document: dict[str, object]) -> MountContext:
    tokens = {"vault": "placeholder", "api://AzureADTokenExchange": "placeholder"}
    request = build_mount_request(document, PodIdentity.named("p", "ns", "sa"), tokens=tokens)
    return parse_mount_request(request.attributes, request.secrets, request.permission, request.target_path)


@pytest.mark.parametrize(("document", "expected"), VAULT_TABLE + AZURE_TABLE)
def test_a_mount_fails_with_the_first_error_lint_reports(document: dict[str, object],
                                                         expected: tuple[str, str, str]) -> None:
    provider_name = str(document["spec"]["provider"])  # type: ignore[index]
    backend = create_backend(provider_name, build_parser().parse_args(["lint", "x"]))
    ctx = mount_context(document)
    errors = [f.message for f in lint_mount(backend, ctx) if f.severity == "error"]
    if not errors:
        plan_mount(backend, ctx)
        return
    with pytest.raises(ProviderError) as caught:
        plan_mount(backend, ctx)
    assert caught.value.message == errors[0]


# ------------------------------------------------------------------ file parameters and --allowed-files-dir

# As the official Vault provider's own e2e SPCs write it: the CA at /mnt/tls/ca.crt.
OFFICIAL_STYLE = vault("- {objectName: secret-1, secretPath: secret/data/kv1, secretKey: bar1}\n",
                       vaultAddress="https://vault:8200", vaultCACertPath="/mnt/tls/ca.crt")
MTLS = vault(GOOD_VAULT, vaultAddress="https://vault:8200", vaultCACertPath="/mnt/tls/ca.crt",
             vaultTLSClientCertPath="/mnt/tls/client.crt", vaultTLSClientKeyPath="/mnt/tls/client.key")
STACK = azure(GOOD_AZURE, cloudName="AzureStackCloud", cloudEnvFileName="/mnt/tls/azurestack.json")
MUST_ALLOW = "the daemon refuses it unless it runs with --allowed-files-dir=/mnt/tls"
OUTSIDE = "must name a file under the directory set by --allowed-files-dir (/mnt/tls)"


@pytest.mark.parametrize(
    ("flags", "document", "exit_code", "expected"),
    [
        # Without the daemon's directory lint cannot judge a file: a warning saying what to allow.
        ([], OFFICIAL_STYLE, 0, [("warning", f"vaultCACertPath names '/mnt/tls/ca.crt', a file on the provider's "
                                              f"disk: {MUST_ALLOW}")]),
        ([], MTLS, 0, [("warning", f"vaultCACertPath names '/mnt/tls/ca.crt', a file on the provider's disk: "
                                   f"{MUST_ALLOW}"),
                       ("warning", f"vaultTLSClientCertPath names '/mnt/tls/client.crt', a file on the "
                                   f"provider's disk: {MUST_ALLOW}"),
                       ("warning", f"vaultTLSClientKeyPath names '/mnt/tls/client.key', a file on the "
                                   f"provider's disk: {MUST_ALLOW}")]),
        ([], vault(GOOD_VAULT, vaultCADirectory="certs"), 0,
         [("warning", "vaultCADirectory names 'certs', a file on the provider's disk: the daemon refuses it unless "
                      "it runs with --allowed-files-dir=the directory that holds it")]),
        ([], STACK, 0, [("warning", f"cloudEnvFileName names '/mnt/tls/azurestack.json', a file on the provider's "
                                    f"disk: {MUST_ALLOW}")]),
        # With it, exactly the daemon's policy.
        (["--allowed-files-dir", "/mnt/tls"], OFFICIAL_STYLE, 0, []),
        (["--allowed-files-dir", "/mnt/tls"], MTLS, 0, []),
        (["--allowed-files-dir", "/mnt/tls"], vault(GOOD_VAULT, vaultCACertPath="ca.crt"), 0, []),
        (["--allowed-files-dir", "/mnt/tls/"], OFFICIAL_STYLE, 0, []),
        (["--allowed-files-dir", "/mnt/tls"], vault(GOOD_VAULT, vaultCACertPath="/etc/ssl/ca.crt"), 1,
         [("error", f"vaultCACertPath {OUTSIDE}; put the file there")]),
        (["--allowed-files-dir", "/mnt/tls"], vault(GOOD_VAULT, vaultCACertPath="../etc/ca.crt"), 1,
         [("error", f"vaultCACertPath {OUTSIDE}")]),
        (["--allowed-files-dir", "/mnt/tls"], vault(GOOD_VAULT, vaultCADirectory="/mnt/tls-other"), 1,
         [("error", f"vaultCADirectory {OUTSIDE}")]),
        (["--allowed-files-dir", "/mnt/tls"], azure(GOOD_AZURE, cloudName="AzureStackCloud",
                                                    cloudEnvFileName="/etc/azure.json"), 1,
         [("error", f"cloudEnvFileName {OUTSIDE}")]),
    ],
    ids=["official CA, no flag", "mTLS, no flag", "relative, no flag", "Azure Stack, no flag", "official CA",
         "mTLS", "relative", "trailing slash", "absolute outside", "dot-dot outside", "sibling directory",
         "Azure Stack outside"],
)
def test_file_parameters_against_the_daemons_allowed_files_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], document: dict[str, object],
    exit_code: int, expected: list[tuple[str, str]],
) -> None:
    assert main(["lint", "--format", "json", *flags, write(tmp_path, document)]) == exit_code
    problems = json.loads(capsys.readouterr().out)["problems"]
    found = [(p["severity"], p["message"].removeprefix("SecretProviderClass default/v: ")) for p in problems]
    assert [s for s, _ in found] == [s for s, _ in expected], found
    assert all(m.startswith(e) for (_, m), (_, e) in zip(found, expected, strict=True)), found
