"""`lint`: offline checks of SPC manifests, one line per problem, exit 1 on errors, --format json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from provider.cli import main

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
