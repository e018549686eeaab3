"""`secrets-store-csi-provider mount`: the local driver from the command line, in-process and via --socket."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import yaml

from tests.support.daemon import ROOT, Daemon

SPC_YAML = {
    "apiVersion": "secrets-store.csi.x-k8s.io/v1",
    "kind": "SecretProviderClass",
    "metadata": {"name": "local-test"},
    "spec": {
        "provider": "test",
        "parameters": {
            "objects": yaml.safe_dump([
                {"objectName": "db-password", "value": "marker-value-0001", "filePermission": "0600"},
                {"objectName": "conf/app.ini", "value": "[app]\n"},
            ]),
            "requireAudience": "test-aud",
        },
    },
}


def run_mount(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    spc_file = tmp_path / "spc.yaml"
    spc_file.write_text("# a leading document that is not an SPC\n---\n" + yaml.safe_dump(SPC_YAML))
    token = tmp_path / "token"
    token.write_text("header.payload.signature\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "tests.support.serve", "mount", str(spc_file), "--target", str(tmp_path / "mnt"),
               "--token", f"test-aud={token}", "--log-level", "warning", *extra]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_mount_in_process_writes_like_kubelet(tmp_path: Path) -> None:
    result = run_mount(tmp_path)
    assert result.returncode == 0, result.stderr
    target = tmp_path / "mnt"
    assert (target / "db-password").read_text() == "marker-value-0001"
    assert (target / "conf" / "app.ini").read_text() == "[app]\n"
    assert os.path.islink(target / "..data")
    assert oct((target / "..data" / "db-password").stat().st_mode & 0o777) == oct(0o600)
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["PATH", "MODE", "SIZE", "OBJECT", "VERSION"]
    row = next(line.split() for line in lines if line.startswith("db-password"))
    assert row[:4] == ["db-password", "0600", "17", "db-password"] and len(row[4]) == 44
    assert "marker-value-0001" not in result.stdout, "contents only with --show"
    assert "wrote:" in lines[-1]
    again = run_mount(tmp_path, "--show")
    assert again.returncode == 0 and "unchanged:" in again.stdout.splitlines()[-1]
    assert "marker-value-0001" in again.stdout


def test_mount_through_a_socket(tmp_path: Path, daemon_factory: Callable[..., Daemon]) -> None:
    daemon = daemon_factory(["test"])
    result = run_mount(tmp_path, "--socket", daemon.socket_path("test"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "mnt" / "db-password").read_text() == "marker-value-0001"
    assert "mount answered" in daemon.logs()


def test_mount_reports_provider_errors(tmp_path: Path) -> None:
    spc_file = tmp_path / "spc.yaml"
    bad = {**SPC_YAML, "spec": {"provider": "test", "parameters": {"failWith": "PERMISSION_DENIED"}}}
    spc_file.write_text(yaml.safe_dump(bad))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "tests.support.serve", "mount", str(spc_file), "--target", str(tmp_path / "m")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 1
    assert "mount failed: PERMISSION_DENIED: planted PERMISSION_DENIED failure" in result.stderr
    assert not (tmp_path / "m").exists()
