"""Azure cloud environments: where Entra ID and Key Vault live for each cloud name.

The names and endpoints are go-autorest's, which SPCs written for the official provider use
(`cloudName`). A custom cloud (AzureStackCloud) comes from a JSON file. Unlike the official provider we
never set a process-wide variable: the environment travels with the mount's plan, so one mount's cloud
cannot leak into another's.
"""

from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import dataclass
from urllib.parse import urlsplit

from provider.errors import invalid
from provider.policy import FilesPolicy

AZURE_STACK = "AzureStackCloud"
# go-autorest reads the custom environment from this variable; we read it (never write it) for the
# daemon-wide --cloud-name AzureStackCloud.
ENVIRONMENT_FILE_VARIABLE = "AZURE_ENVIRONMENT_FILEPATH"
# A cloud file is a few hundred bytes; anything larger is not one (and /dev/zero must not hang a mount).
MAX_CLOUD_FILE_BYTES = 64 * 1024
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_DNS_SUFFIX = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*(?::\d{{1,5}})?$")
_VAULT_NAME = re.compile(r"^[-A-Za-z0-9]{3,24}$")


@dataclass(frozen=True)
class CloudEnvironment:
    """One cloud: its Entra ID authority and Key Vault resource and DNS suffix."""

    name: str
    authority_host: str  # https://login.microsoftonline.com/
    keyvault_resource: str  # https://vault.azure.net/ (the token audience)
    keyvault_dns_suffix: str  # vault.azure.net

    @property
    def is_custom(self) -> bool:
        return self.name == AZURE_STACK


KNOWN_CLOUDS: dict[str, CloudEnvironment] = {
    cloud.name.lower(): cloud
    for cloud in (
        CloudEnvironment(
            "AzurePublicCloud", "https://login.microsoftonline.com/", "https://vault.azure.net/", "vault.azure.net"
        ),
        CloudEnvironment(
            "AzureUSGovernmentCloud",
            "https://login.microsoftonline.us/",
            "https://vault.usgovcloudapi.net/",
            "vault.usgovcloudapi.net",
        ),
        CloudEnvironment(
            "AzureChinaCloud", "https://login.chinacloudapi.cn/", "https://vault.azure.cn/", "vault.azure.cn"
        ),
        CloudEnvironment(
            "AzureGermanCloud",
            "https://login.microsoftonline.de/",
            "https://vault.microsoftazure.de/",
            "vault.microsoftazure.de",
        ),
    )
}
CLOUD_NAMES = (*(c.name for c in KNOWN_CLOUDS.values()), AZURE_STACK)
# What `lint` checks an Azure Stack SPC against when it may not read the SPC's cloud file.
LINT_STAND_IN_CLOUD = CloudEnvironment(
    AZURE_STACK, "https://login.azurestack.invalid/", "https://vault.azurestack.invalid/", "vault.azurestack.invalid"
)


def canonical_cloud_name(name: str) -> str:
    """The cloud's canonical spelling (names match without regard to case); INVALID_ARGUMENT if unknown."""
    for known in CLOUD_NAMES:
        if known.lower() == name.strip().lower():
            return known
    raise invalid(f"cloudName {name!r} is not valid; use one of {', '.join(CLOUD_NAMES)}")


def resolve_cloud(name: str, env_file: str, default_name: str, files: FilesPolicy) -> CloudEnvironment:
    """The environment for an SPC's cloudName ("" = the daemon's --cloud-name) and cloudEnvFileName.

    The SPC's file must lie under the operator's --allowed-files-dir; without cloudEnvFileName the
    daemon's own AZURE_ENVIRONMENT_FILEPATH (the operator's) is used, as go-autorest does.
    """
    canonical = canonical_cloud_name(name or default_name)
    if canonical != AZURE_STACK:
        return KNOWN_CLOUDS[canonical.lower()]
    if env_file:
        if files.unchecked_file(env_file, "cloudEnvFileName") is not None:
            return LINT_STAND_IN_CLOUD  # lint without the daemon's --allowed-files-dir: the file is not read
        return load_cloud_file(files.resolve_spc_file(env_file, "cloudEnvFileName"))
    path = os.environ.get(ENVIRONMENT_FILE_VARIABLE, "")
    if not path:
        raise invalid(
            "cloudName AzureStackCloud needs cloudEnvFileName: the path, inside the provider pod, of a JSON "
            "file with name, activeDirectoryEndpoint, keyVaultEndpoint and keyVaultDNSSuffix"
        )
    return load_cloud_file(path)


def load_cloud_file(path: str) -> CloudEnvironment:
    """Read a custom cloud's JSON file. Errors name the file and the field, never the file's content."""
    where = f"the cloud file {path!r}"
    if not os.path.isabs(path):
        raise invalid(f"{where} must be an absolute path inside the provider pod")
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise invalid(f"{where} is not a regular file")
        if info.st_size > MAX_CLOUD_FILE_BYTES:
            raise invalid(f"{where} is larger than {MAX_CLOUD_FILE_BYTES} bytes; it is not a cloud file")
        with open(path, encoding="utf-8") as handle:
            data = json.loads(handle.read(MAX_CLOUD_FILE_BYTES))
    except FileNotFoundError:
        raise invalid(f"{where} does not exist in the provider pod; mount it into the provider") from None
    except PermissionError:
        raise invalid(f"{where} cannot be read by the provider") from None
    except (ValueError, UnicodeDecodeError):
        raise invalid(f"{where} is not a JSON object") from None
    except OSError as exc:
        raise invalid(f"{where} cannot be read ({exc.strerror})") from None
    if not isinstance(data, dict):
        raise invalid(f"{where} is not a JSON object")
    fields = {key.lower(): value for key, value in data.items() if isinstance(key, str)}

    def field(key: str) -> str:
        value = fields.get(key.lower())
        if not isinstance(value, str) or not value.strip():
            raise invalid(f"{where} has no {key!r} string; a custom cloud needs it")
        return value.strip()

    authority = _https_url(field("activeDirectoryEndpoint"), f"{where} activeDirectoryEndpoint")
    resource = _https_url(field("keyVaultEndpoint"), f"{where} keyVaultEndpoint")
    suffix = field("keyVaultDNSSuffix").strip(".")
    if not _DNS_SUFFIX.match(suffix):
        raise invalid(f"{where} keyVaultDNSSuffix {suffix!r} is not a DNS name such as vault.local.azurestack.external")
    return CloudEnvironment(AZURE_STACK, authority, resource, suffix)


def _https_url(value: str, what: str) -> str:
    parts = urlsplit(value)
    if parts.scheme.lower() != "https" or not parts.hostname:
        raise invalid(
            f"{what} must be an https:// URL (got {value!r}); Key Vault and Entra ID are reached over TLS only"
        )
    if parts.query or parts.fragment or parts.username or parts.password:
        raise invalid(f"{what} must be a plain https:// URL without credentials, query or fragment")
    return value if value.endswith("/") else value + "/"


def vault_url(vault_name: str, cloud: CloudEnvironment) -> str:
    """https://<name>.<suffix>/ after checking the name as Key Vault does (3-24 of [-A-Za-z0-9])."""
    if not _VAULT_NAME.match(vault_name):
        raise invalid(
            f"keyvaultName {vault_name!r} is not a valid vault name: it must be 3 to 24 characters of "
            "letters, digits and '-'"
        )
    return f"https://{vault_name}.{cloud.keyvault_dns_suffix}/"
