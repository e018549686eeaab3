"""The Azure Key Vault backend as data: its SPC parameters, object fields, daemon flags, token audience and the
nodePublishSecretRef keys it reads.

The core derives from this the unknown-name hints, `--help`, lint's placeholders and the tables of
docs/azure.md (a test renders them and fails when the docs differ). No Azure SDK here.
"""

from __future__ import annotations

import argparse

from provider.backends.azure.tokenproxy import (
    DEFAULT_PROXY_URL,
    check_proxy_url,
    check_sni_name,
)
from provider.contract import Declaration, Flag, ObjectField, Parameter
from provider.kube import IN_CLUSTER_CA_FILE
from provider.scalars import FLAG_BOOL, GO_BOOL

WORKLOAD_IDENTITY_AUDIENCE = "api://AzureADTokenExchange"
IDENTITY_BINDING_AUDIENCE = "api://AKSIdentityBinding"
# How a mount asks Key Vault, as the metric label and audit field (config.identity_mode).
IDENTITY_MODES = ("workload-identity", "identity-binding", "service-principal", "managed-identity")
DEFAULT_CLOUD = "AzurePublicCloud"
# nodePublishSecretRef keys of a service principal; the client id identifies, the secret authenticates.
CLIENT_ID_KEY, CLIENT_SECRET_KEY = "clientid", "clientsecret"
IGNORED_OFFICIALLY = "the official provider ignores it too"

PARAMETERS = (
    Parameter("keyvaultName", "The vault's name (3 to 24 letters, digits and `-`), not its URL. The URL is "
              "`https://<name>.<the cloud's Key Vault DNS suffix>/`.", required=True, example="`kvname`"),
    Parameter("tenantID", "The vault's Entra ID tenant (GUID or domain). `tenantId`, the older spelling, is read when "
              "`tenantID` is empty.", required=True, aliases=("tenantId",),
              example="`72f988bf-86f1-41af-91ab-2d7cd011db47`"),
    Parameter("clientID", "Workload identity: the client ID of the identity federated with the pod's service "
              "account. Identity binding: the client ID of the bound managed identity.", default='`""`',
              example="`00000000-0000-0000-0000-000000000000`"),
    Parameter("useVMManagedIdentity", "Read with the node's managed identity (see [Identities](#identities)); refused "
              "when the operator sets `--deny-node-identity`.", default='`"false"`', example='`"true"`',
              booleans=GO_BOOL),
    Parameter("userAssignedIdentityID", "With `useVMManagedIdentity`: the client ID of a user-assigned identity of "
              "the node; empty for the system-assigned one.", default='`""`',
              example="`22222222-2222-2222-2222-222222222222`"),
    Parameter("cloudName", "The Azure cloud, in any letter case: `AzurePublicCloud`, `AzureUSGovernmentCloud`, "
              "`AzureChinaCloud`, `AzureGermanCloud`, `AzureStackCloud`.", default="the daemon's `--cloud-name`",
              example="`AzureUSGovernmentCloud`"),
    Parameter("cloudEnvFileName", "With `AzureStackCloud`: the cloud's JSON file, which must lie under the daemon's "
              "`--allowed-files-dir` (a path relative to it, or absolute). Ignored for the other clouds.",
              default='`""`', example="`azurestack.json`"),
    Parameter("objects", "The objects to mount, in the official `array:` form (below).", required=True),
    Parameter("usePodIdentity", "aad-pod-identity. Retired: `\"true\"` is an error that says to use workload "
              "identity.", default='`"false"`', booleans=GO_BOOL),
    Parameter("useAzureTokenProxy", "AKS identity binding ([below](#aks-identity-binding)): with `clientID`, the "
              f"pod's token for `{IDENTITY_BINDING_AUDIENCE}` is exchanged through the cluster's token proxy.",
              default='`"false"`', example='`"true"`', booleans=GO_BOOL),
    Parameter("resourceGroup", "", ignored=IGNORED_OFFICIALLY),
    Parameter("subscriptionId", "", ignored=IGNORED_OFFICIALLY),
)

OBJECT_FIELDS = (
    ObjectField("objectName", "The object's name in Key Vault (1 to 127 letters, digits and `-`).", "required"),
    ObjectField("objectAlias", "The file's path in the mount; may contain directories (`tls/server.pem`).",
                "`objectName`"),
    ObjectField("objectType", "`secret`, `key` or `cert` (any letter case).", "required"),
    ObjectField("objectVersion", "A version id (32 hex digits). `\"\"` or `latest` is the latest version.", "latest"),
    ObjectField("objectVersionHistory", "A number N > 1: mount the N newest enabled versions as `<file>/0` (newest) "
                "... `<file>/N-1`. 0 or 1: one version.", "0"),
    ObjectField("objectFormat", "`pem` or `pfx` (any case). `pfx` only for `objectType: secret` of a certificate.",
                "`pem`"),
    ObjectField("objectEncoding", "`utf-8`, `base64` or `hex` (any case): how to decode the secret's text into the "
                "file's bytes. Only for `objectType: secret`.", "`utf-8`"),
    ObjectField("filePermission", "The file's mode, octal text: `\"0644\"`, `0600`, `\"400\"`.",
                "the request's mode (0644)"),
    # Ours: the object's own vault, with the SPC's identity (official provider issue #1088).
    ObjectField("keyvaultName", "The object's own vault, read with the SPC's identity, tenant and cloud ([several "
                "vaults](#several-vaults-in-one-secretproviderclass)). Not an official field.",
                "the SPC's `keyvaultName`"),
)


def _flag(value: str) -> bool:
    setting = FLAG_BOOL.parse(value.strip())
    if setting is not None:
        return setting
    raise argparse.ArgumentTypeError(f"{value!r} is not true or false; use {FLAG_BOOL.words()}")


def _cloud(name: str) -> str:
    """--cloud-name: the cloud's canonical spelling (any letter case is accepted, as for cloudName)."""
    from provider.backends.azure.clouds import CLOUD_NAMES, canonical_cloud_name
    from provider.errors import ProviderError

    try:
        return canonical_cloud_name(name)
    except ProviderError:
        raise argparse.ArgumentTypeError(f"{name!r} is not a cloud; use one of {', '.join(CLOUD_NAMES)}") from None


def _proxy_url(url: str) -> str:
    problem = check_proxy_url(url)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return url


def _sni_name(name: str) -> str:
    problem = check_sni_name(name)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return name.strip()


# The official provider's flags, spelled the same so its Helm arguments carry over.
FLAGS = (
    Flag("--construct-pem-chain", "order PKCS#12 certificate chains leaf, intermediates, root (default true)",
         default=True, type=_flag, nargs="?", const=True, metavar="BOOL"),
    Flag("--write-cert-and-key-in-separate-files", "also write <file>.crt and <file>.key for certificate-backed "
         "secrets (default false)", default=False, type=_flag, nargs="?", const=True, metavar="BOOL"),
    Flag("--cloud-name", "the cloud for SPCs without cloudName: AzurePublicCloud, AzureUSGovernmentCloud, "
         "AzureChinaCloud, AzureGermanCloud or AzureStackCloud (with AZURE_ENVIRONMENT_FILEPATH)",
         default=DEFAULT_CLOUD, type=_cloud, metavar="NAME"),
    Flag("--token-proxy-url", "identity binding (useAzureTokenProxy): the AKS token proxy that token requests go to "
         f"(default {DEFAULT_PROXY_URL})", default=DEFAULT_PROXY_URL, type=_proxy_url, metavar="URL"),
    Flag("--sni-name", "identity binding: the token proxy's TLS SNI name (default: computed from the API server's "
         "certificate at the first identity-binding mount)", default="", type=_sni_name, metavar="NAME"),
    Flag("--token-proxy-ca-file", "identity binding: the cluster CA that the token proxy's and the API server's "
         f"certificates are checked with (default {IN_CLUSTER_CA_FILE})", default=IN_CLUSTER_CA_FILE,
         metavar="FILE"),
)
POLICY_FLAGS = (
    Flag("--deny-node-identity", "refuse SPCs that ask for the node's managed identity (Azure useVMManagedIdentity)",
         action="store_true", default=False),
)

DECLARATION = Declaration(
    name="azure",
    parameters=PARAMETERS,
    object_fields=OBJECT_FIELDS,
    flags=FLAGS,
    policy_flags=POLICY_FLAGS,
    token_audiences=(WORKLOAD_IDENTITY_AUDIENCE, IDENTITY_BINDING_AUDIENCE, ""),
    identity_modes=IDENTITY_MODES,
    secret_keys=(CLIENT_ID_KEY, CLIENT_SECRET_KEY),
    public_secret_keys=frozenset({CLIENT_ID_KEY, "client_id"}),
    parameter_columns=("Parameter", "Meaning", "Default", "Example"),
    field_columns=("Field", "Meaning", "Default"),
)
