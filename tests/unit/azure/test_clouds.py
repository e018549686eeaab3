"""Cloud names and custom cloud files (TestParseAzureEnvironment, TestParseAzureEnvironmentAzureStackCloud)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from provider.backends.azure.clouds import (
    ENVIRONMENT_FILE_VARIABLE,
    canonical_cloud_name,
    load_cloud_file,
    resolve_cloud,
    vault_url,
)
from provider.errors import ErrorKind, ProviderError
from provider.policy import FilesPolicy

STACK = {"name": "AzureStackCloud", "activeDirectoryEndpoint": "https://adfs.local.azurestack.external/adfs/",
         "keyVaultEndpoint": "https://vault.local.azurestack.external",
         "keyVaultDNSSuffix": "vault.local.azurestack.external"}


@pytest.mark.parametrize(
    ("name", "expected"),
    [("AZUREPUBLICCLOUD", "AzurePublicCloud"), ("AZURECHINACLOUD", "AzureChinaCloud"),
     ("AZUREGERMANCLOUD", "AzureGermanCloud"), ("AZUREUSGOVERNMENTCLOUD", "AzureUSGovernmentCloud"),
     ("azurestackcloud", "AzureStackCloud"), (" AzurePublicCloud ", "AzurePublicCloud")],
)
def test_cloud_names_match_without_regard_to_case(name: str, expected: str) -> None:
    assert canonical_cloud_name(name) == expected


def test_unknown_cloud() -> None:
    with pytest.raises(ProviderError, match="cloudName 'AZUREWRONGCLOUD' is not valid; use one of AzurePublicCloud"):
        canonical_cloud_name("AZUREWRONGCLOUD")


@pytest.mark.parametrize(
    ("cloud", "authority", "resource"),
    [("", "https://login.microsoftonline.com/", "https://vault.azure.net/"),
     ("AzureUSGovernmentCloud", "https://login.microsoftonline.us/", "https://vault.usgovcloudapi.net/"),
     ("AzureChinaCloud", "https://login.chinacloudapi.cn/", "https://vault.azure.cn/"),
     ("AzureGermanCloud", "https://login.microsoftonline.de/", "https://vault.microsoftazure.de/")],
)
def test_known_clouds(cloud: str, authority: str, resource: str) -> None:
    env = resolve_cloud(cloud, "", "AzurePublicCloud", FilesPolicy())
    assert (env.authority_host, env.keyvault_resource) == (authority, resource)


def write(tmp_path: Path, content: object, name: str = "cloud.json") -> str:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


def test_stack_cloud_file(tmp_path: Path) -> None:
    env = load_cloud_file(write(tmp_path, STACK))
    assert env.name == "AzureStackCloud"
    assert env.authority_host == "https://adfs.local.azurestack.external/adfs/"
    assert env.keyvault_resource == "https://vault.local.azurestack.external/"
    assert vault_url("kv1", env) == "https://kv1.vault.local.azurestack.external/"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "is not a JSON object"),
        ("[]", "is not a JSON object"),
        ({"name": "AZURESTACKCLOUD"}, "has no 'activeDirectoryEndpoint' string"),
        ({**STACK, "keyVaultEndpoint": "http://vault.local"}, "keyVaultEndpoint must be an https:// URL"),
        ({**STACK, "activeDirectoryEndpoint": "https://user:pw@login"}, "without credentials"),
        ({**STACK, "keyVaultDNSSuffix": "vault/../x"}, "keyVaultDNSSuffix 'vault/../x' is not a DNS name"),
        ({**STACK, "keyVaultDNSSuffix": ""}, "has no 'keyVaultDNSSuffix' string"),
    ],
)
def test_bad_cloud_files(tmp_path: Path, content: object, message: str) -> None:
    with pytest.raises(ProviderError) as caught:
        load_cloud_file(write(tmp_path, content))
    assert caught.value.kind is ErrorKind.INVALID_ARGUMENT
    assert message in caught.value.message


def test_cloud_file_errors_never_show_the_content(tmp_path: Path) -> None:
    path = write(tmp_path, "not json but a secret: hunter2-marker")
    with pytest.raises(ProviderError) as caught:
        load_cloud_file(path)
    assert "hunter2-marker" not in caught.value.message


@pytest.mark.parametrize(
    ("path", "message"),
    [("relative.json", "must be an absolute path"), ("/nonexistent/akscustom.json", "does not exist"),
     ("/dev/zero", "is not a regular file"), ("/", "is not a regular file")],
)
def test_cloud_file_paths(path: str, message: str) -> None:
    with pytest.raises(ProviderError, match=message):
        load_cloud_file(path)


def test_oversized_cloud_file(tmp_path: Path) -> None:
    with pytest.raises(ProviderError, match="larger than"):
        load_cloud_file(write(tmp_path, " " * 70_000))


def test_daemon_environment_file_for_the_default_stack_cloud(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENVIRONMENT_FILE_VARIABLE, write(tmp_path, STACK))
    env = resolve_cloud("", "", "AzureStackCloud", FilesPolicy())
    assert env.keyvault_dns_suffix == "vault.local.azurestack.external"
    monkeypatch.delenv(ENVIRONMENT_FILE_VARIABLE)
    with pytest.raises(ProviderError, match="needs cloudEnvFileName"):
        resolve_cloud("", "", "AzureStackCloud", FilesPolicy())


def test_spc_cloud_file_needs_the_operator_directory(tmp_path: Path) -> None:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    write(allowed, STACK, "stack.json")
    policy = FilesPolicy(allowed_files_dir=str(allowed))
    assert resolve_cloud("AzureStackCloud", "stack.json", "AzurePublicCloud", policy).name == "AzureStackCloud"
    assert resolve_cloud("AzureStackCloud", str(allowed / "stack.json"), "x", policy).name == "AzureStackCloud"
    for outside in ("../stack.json", "/etc/passwd", os.path.join(str(tmp_path), "stack.json")):
        with pytest.raises(ProviderError) as caught:
            resolve_cloud("AzureStackCloud", outside, "AzurePublicCloud", policy)
        assert caught.value.kind is ErrorKind.PERMISSION_DENIED


def test_cloud_env_file_is_ignored_for_named_clouds(tmp_path: Path) -> None:
    # Like the official provider: cloudEnvFileName only counts with AzureStackCloud.
    env = resolve_cloud("AzureChinaCloud", "/etc/passwd", "AzurePublicCloud", FilesPolicy())
    assert env.name == "AzureChinaCloud"
