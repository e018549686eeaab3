"""policy.py: which files on the provider's disk an SPC may name."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from provider.errors import ErrorKind, ProviderError
from provider.policy import FilesPolicy


@pytest.mark.parametrize(("args", "expected"), [
    (argparse.Namespace(command="serve", allowed_files_dir=""), FilesPolicy()),
    (argparse.Namespace(command="serve", allowed_files_dir="/mnt/tls"), FilesPolicy("/mnt/tls")),
    (argparse.Namespace(command="lint", allowed_files_dir=""), FilesPolicy(files_dir_unknown=True)),
    (argparse.Namespace(command="lint", allowed_files_dir="/mnt/tls"), FilesPolicy("/mnt/tls")),
    (argparse.Namespace(), FilesPolicy()),
])
def test_files_policy_from_the_flags(args: argparse.Namespace, expected: FilesPolicy) -> None:
    assert FilesPolicy.from_args(args) == expected


def test_files_refused_without_an_allowed_dir() -> None:
    with pytest.raises(ProviderError) as caught:
        FilesPolicy().resolve_spc_file("/etc/ssl/ca.pem", "vaultCACertPath")
    assert "--allowed-files-dir" in caught.value.message and "vaultCACertPath" in caught.value.message


@pytest.mark.parametrize("name", ["../outside.pem", "/etc/passwd", "sub/../../outside.pem", "link-out/x"])
def test_files_outside_the_dir_are_refused(tmp_path: Path, name: str) -> None:
    allowed = tmp_path / "allowed"
    (allowed / "sub").mkdir(parents=True)
    (tmp_path / "outside.pem").write_text("x")
    (allowed / "link-out").symlink_to(tmp_path)
    with pytest.raises(ProviderError) as caught:
        FilesPolicy(allowed_files_dir=str(allowed)).resolve_spc_file(name, "vaultCACertPath")
    assert "--allowed-files-dir" in caught.value.message
    assert f"--allowed-files-dir ({allowed})" in caught.value.message  # the operator's directory, as set
    assert str(tmp_path) not in caught.value.message.replace(str(allowed), ""), "no other provider paths echoed"


@pytest.mark.parametrize("name", ["ca.pem", "sub/ca.pem"])
def test_files_inside_the_dir_resolve(tmp_path: Path, name: str) -> None:
    (tmp_path / "sub").mkdir()
    policy = FilesPolicy(allowed_files_dir=str(tmp_path))
    assert policy.resolve_spc_file(name, "vaultCACertPath") == str((tmp_path / name).resolve())
    assert policy.resolve_spc_file(str(tmp_path / name), "p") == str((tmp_path / name).resolve())


def test_a_nul_byte_in_a_file_parameter_is_a_clean_refusal(tmp_path: Path) -> None:
    # Found by tests/fuzz/test_backend_plan_fuzz.py: os.path.realpath raised ValueError, which became INTERNAL.
    with pytest.raises(ProviderError) as caught:
        FilesPolicy(allowed_files_dir=str(tmp_path)).resolve_spc_file("ca.pem\x00../x", "vaultCACertPath")
    assert caught.value.kind is ErrorKind.INVALID_ARGUMENT
    assert "vaultCACertPath" in caught.value.message and "NUL" in caught.value.message
