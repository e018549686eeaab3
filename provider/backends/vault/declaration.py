"""The Vault backend as data: its SPC parameters, object fields, daemon flags, token audience and defaults.

The core derives from this the unknown-name hints, `--help`, lint's placeholders and the tables of
docs/vault.md (a test renders them and fails when the docs differ). No hvac here: a daemon that serves
only Azure reads this module and nothing else of Vault.
"""

from __future__ import annotations

import argparse
import math

from provider.contract import Declaration, Flag, ObjectField, Parameter
from provider.scalars import GO_BOOL, whole_number_from

DEFAULT_ADDRESS = "https://127.0.0.1:8200"
DEFAULT_AUTH_MOUNT = "kubernetes"
DEFAULT_AUDIENCE = "vault"
DEFAULT_CACHE_SIZE = 1000
DEFAULT_CONCURRENCY = 8
POD, SERVICE_ACCOUNT = "pod", "service-account"
TOKEN_SCOPES = (POD, SERVICE_ACCOUNT)

ROLE = "roleName"
ADDRESS = "vaultAddress"
NAMESPACE = "vaultNamespace"
AUTH_MOUNT = "vaultAuthMountPath"
KUBERNETES_MOUNT = "vaultKubernetesMountPath"
AUDIENCE = "audience"
CA_CERT = "vaultCACertPath"
CA_DIRECTORY = "vaultCADirectory"
SERVER_NAME = "vaultTLSServerName"
SKIP_VERIFY = "vaultSkipTLSVerify"
CLIENT_CERT = "vaultTLSClientCertPath"
CLIENT_KEY = "vaultTLSClientKeyPath"
OBJECTS = "objects"
# Accepted and ignored by the official provider since 0.1.0.
IGNORED_SINCE_0_1_0 = "as by the official provider since 0.1.0"

PARAMETERS = (
    Parameter(ROLE, "The Vault role to log in with.", required=True),
    Parameter(ADDRESS, "Vault's URL, a plain `http(s)://host[:port][/path]` (no user, query, fragment, backslash, "
              "whitespace, or `.`/`..` segment), or `unix:///path/agent.sock` for a Vault Agent socket in the provider "
              "pod.",
              default=f"`--vault-addr`, else `$VAULT_ADDR`, else `{DEFAULT_ADDRESS}`"),
    Parameter(NAMESPACE, "Vault Enterprise / OpenBao namespace, sent on the login and on every read: the auth method "
              "must be enabled in that namespace.", default="`--vault-namespace`, else `$VAULT_NAMESPACE`"),
    Parameter(AUTH_MOUNT, "The auth mount: the part after `auth/` (`kubernetes`, `jwt`, `k8s-prod`).",
              default=f"`--vault-mount` (`{DEFAULT_AUTH_MOUNT}`)"),
    Parameter(KUBERNETES_MOUNT, "The older name of `vaultAuthMountPath`. Setting both (even empty) is an error."),
    Parameter(AUDIENCE, "Which of kubelet's tokens to log in with. Without a driver token for it, the audience of the "
              "token the provider requests itself.", default=f"`{DEFAULT_AUDIENCE}`"),
    Parameter(CA_CERT, "A PEM file of CA certificates to trust instead of the system's.",
              default="`--vault-tls-ca-cert`, else `$VAULT_CACERT`"),
    Parameter(CA_DIRECTORY, "A directory of PEM CA files (every file must be PEM).",
              default="`--vault-tls-ca-directory`, else `$VAULT_CAPATH`"),
    Parameter(SERVER_NAME, "The name to send (SNI) and to verify the certificate against.",
              default="`--vault-tls-server-name`, else `$VAULT_TLS_SERVER_NAME`"),
    Parameter(SKIP_VERIFY, "`\"true\"`: do not verify Vault's certificate. For tests only. With "
              "`--allowed-vault-addresses` set, an SPC's `\"true\"` is refused unless the operator also sets "
              "`--allow-vault-skip-tls-verify`.",
              default="`--vault-tls-skip-verify`, else `$VAULT_SKIP_VERIFY`, else `false`", booleans=GO_BOOL),
    Parameter(CLIENT_CERT, "A PEM client certificate and its key, for Vault listeners that require one. Both or "
              "neither.", default="`--vault-tls-client-cert`/`--vault-tls-client-key`, else "
              "`$VAULT_CLIENT_CERT`/`$VAULT_CLIENT_KEY`"),
    Parameter(CLIENT_KEY, "", row_of=CLIENT_CERT),
    Parameter(OBJECTS, "A YAML list of the objects to mount (below).", required=True),
    Parameter("kubernetesServiceAccountPath", "", ignored=IGNORED_SINCE_0_1_0),
    Parameter("vaultCAPem", "", ignored=IGNORED_SINCE_0_1_0),
)

OBJECT_FIELDS = (
    ObjectField("objectName", "The file's path in the mount (`a`, `db/password`); unique in the class. Also the "
                "object's id in the pod's `SecretProviderClassPodStatus`.", "required"),
    ObjectField("secretPath", "The Vault API path, as in `vault read`: `secret/data/app` for KV v2 (with `/data/`), "
                "`kv/app` for KV v1, `database/creds/app`, `pki/issue/web`. A leading `/v1/`, `v1/` or `/` is "
                "accepted. A query string becomes request parameters: `secret/data/app?version=3`.", "required"),
    ObjectField("secretKey", "The key to write. Looked up in `data.data` when that is a map (KV v2), else in `data`. "
                "Without it, the whole response is written as JSON. `\"*\"`: every key, one file each "
                "([below](#one-file-per-key-secretkey-)).", "none"),
    ObjectField("method", "`GET`, `LIST`, `POST`, `PUT` or `PATCH` (any case).", "`GET`"),
    ObjectField("secretArgs", "A map sent as the JSON request body, for endpoints that take one (`pki/issue/...`). "
                "Types are kept: `true` is a boolean, `\"true\"` a string, `10` a number.", "none"),
    ObjectField("encoding", "How the Vault value is encoded: `utf-8`, `base64` or `hex` (any case). The file gets the "
                "**decoded** bytes. Only with `secretKey`.", "`utf-8`"),
    ObjectField("filePermission", "The file's mode, octal as in `0600` or `0o600`, or decimal as in `384`.",
                "the driver's (0644)"),
)
# Fields of old releases, and what became of them (CHANGELOG 0.1.0 and 1.0.0).
FORMER_FIELDS = {"objectPath": "secretPath", "objectVersion": "", "objectType": "", "objectAlias": "objectName"}


def _duration(text: str) -> float:
    """--cache-ttl: a duration from 0 (0 keeps nothing)."""
    from provider.backends.vault.values import parse_duration

    if text.strip().startswith("-"):
        raise argparse.ArgumentTypeError(f"{text!r} is negative; give a duration from 0 such as 30s, 2m or 1m30s "
                                         "(0 keeps nothing)")
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not math.isfinite(seconds):
        raise argparse.ArgumentTypeError(f"{text!r} is too long a duration; give one such as 30s, 2m or 1m30s")
    return seconds


# Counting flags: how many of something, where 0 (when allowed) turns the thing off.
_FROM_ZERO, _FROM_ONE = whole_number_from(0), whole_number_from(1)


FLAGS = (
    Flag("--vault-addr", "default Vault address (else VAULT_ADDR, else https://127.0.0.1:8200)"),
    Flag("--vault-mount", "default auth mount path for login (Kubernetes or JWT auth)", default=DEFAULT_AUTH_MOUNT),
    Flag("--vault-namespace", "default Vault namespace (else VAULT_NAMESPACE)"),
    Flag("--vault-tls-ca-cert", "default PEM CA file to trust (else VAULT_CACERT)"),
    Flag("--vault-tls-ca-directory", "default directory of PEM CA files (else VAULT_CAPATH)"),
    Flag("--vault-tls-server-name", "default TLS server name (else VAULT_TLS_SERVER_NAME)"),
    Flag("--vault-tls-client-cert", "default PEM client certificate (else VAULT_CLIENT_CERT)"),
    Flag("--vault-tls-client-key", "default PEM client key (else VAULT_CLIENT_KEY)"),
    Flag("--vault-tls-skip-verify", "do not verify Vault's certificate by default (else VAULT_SKIP_VERIFY); for tests "
         "only", action="store_true"),
    Flag("--vault-cache-size", "Vault tokens kept, one per pod and login setting; 0 disables the cache (a login every "
         "mount)", default=DEFAULT_CACHE_SIZE, type=_FROM_ZERO),
    Flag("--vault-concurrency", "Vault reads in flight at once within one mount", default=DEFAULT_CONCURRENCY,
         type=_FROM_ONE),
    Flag("--vault-token-scope", "pod: one Vault token per pod (default); service-account: the pods of a service "
         "account share one (fewer logins; not for roles that bind pod-specific claims, see docs/performance.md)",
         default=POD, choices=TOKEN_SCOPES),
    Flag("--cache-ttl", "keep Vault's answers to GET and LIST reads this long (e.g. 30s, 2m) for the identity that "
         "read them; 0 (default) reads at every mount. A changed secret reaches pods up to this much later",
         default=0.0, type=_duration, metavar="DURATION"),
    Flag("--vault-lease-cache-size", "leased credentials kept per pod and request, so rotation polls get the same ones "
         "until 2/3 of their lease; 0 reads new credentials at every mount", default=DEFAULT_CACHE_SIZE,
         type=_FROM_ZERO),
)
POLICY_FLAGS = (
    Flag("--allowed-vault-addresses", "comma-separated URL prefixes SPCs may name as vaultAddress (default: any; "
         "unsafe on shared clusters)", default=""),
    Flag("--allow-vault-skip-tls-verify", "with --allowed-vault-addresses, still let SPCs set vaultSkipTLSVerify: "
         "\"true\" (refused by default)", action="store_true", default=False),
)


def _serve_warnings(args: argparse.Namespace) -> list[str]:
    if getattr(args, "allowed_vault_addresses", ""):
        return []
    return ["no --allowed-vault-addresses: any SecretProviderClass may send pod tokens to any Vault address; "
            "set it on clusters where SPC authors are not all trusted"]


DECLARATION = Declaration(
    name="vault",
    parameters=PARAMETERS,
    object_fields=OBJECT_FIELDS,
    flags=FLAGS,
    policy_flags=POLICY_FLAGS,
    token_audiences=(DEFAULT_AUDIENCE, ""),
    audience_parameters=(AUDIENCE,),
    identity_modes=("service-account",),
    former_fields=FORMER_FIELDS,
    parameter_columns=("Parameter", "Required", "Default", "Meaning"),
    field_columns=("Field", "Default", "Meaning"),
    serve_warnings=_serve_warnings,
)
