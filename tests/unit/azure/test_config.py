"""SPC parameters + pod → AzurePlan: the official TestGetSecretsStoreObjectContent and auth_test cases,
identity selection, object ids and path clashes. Everything here happens before any request."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from provider.backends.azure.config import (
    IDENTITY_MODES,
    AzureOptions,
    IdentityBinding,
    ManagedIdentity,
    ServicePrincipal,
    WorkloadIdentity,
    build_plan,
    parse_bool,
)
from provider.backends.azure.declaration import DECLARATION
from provider.backends.azure.policy import AzurePolicy
from provider.contract import Parameter
from provider.errors import ErrorKind, ProviderError
from provider.policy import FilesPolicy
from provider.request import MountContext, parse_mount_request

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
AUDIENCE = "api://AzureADTokenExchange"
BINDING = "api://AKSIdentityBinding"
POD = {"csi.storage.k8s.io/pod.name": "app", "csi.storage.k8s.io/pod.namespace": "team",
       "csi.storage.k8s.io/pod.uid": "uid-1", "csi.storage.k8s.io/serviceAccount.name": "app-sa"}
OBJECTS = "array:\n  - |\n    objectName: secret1\n    objectType: secret\n"
SP_SECRETS = {"clientid": "sp-client", "clientsecret": "sp-secret-value"}


def context(params: dict[str, str], pod: dict[str, str] | None = None, secrets: dict[str, str] | None = None,
            tokens: dict[str, str] | None = None) -> MountContext:
    attributes = {**(POD if pod is None else pod), **params}
    if tokens:
        attributes["csi.storage.k8s.io/serviceAccount.tokens"] = json.dumps(
            {aud: {"token": tok, "expirationTimestamp": "2030-01-01T00:00:00Z"} for aud, tok in tokens.items()})
    return parse_mount_request(json.dumps(attributes), json.dumps(secrets) if secrets else "null", "420", "/t")


def base(**extra: str) -> dict[str, str]:
    return {"keyvaultName": "testkv", "tenantID": TENANT, "objects": OBJECTS, **extra}


def plan_error(ctx: MountContext, options: AzureOptions | None = None) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        build_plan(ctx, options or AzureOptions())
    return caught.value


@pytest.mark.parametrize(
    ("pod", "params", "secrets", "kind", "message"),
    [
        ({}, {}, None, ErrorKind.INVALID_ARGUMENT, "pod name is not provided"),
        ({"csi.storage.k8s.io/pod.name": "p"}, {}, None, ErrorKind.INVALID_ARGUMENT, "pod namespace is not provided"),
        (None, {}, None, ErrorKind.INVALID_ARGUMENT, "keyvaultName is not provided"),
        (None, {"keyvaultName": "testkv"}, None, ErrorKind.INVALID_ARGUMENT, "tenantId is not provided"),
        (None, base(usePodIdentity="tru"), None, ErrorKind.INVALID_ARGUMENT,
         "failed to parse usePodIdentity flag: 'tru' is not true or false"),
        (None, base(useVMManagedIdentity="tru"), None, ErrorKind.INVALID_ARGUMENT,
         "failed to parse useVMManagedIdentity flag"),
        (None, base(useAzureTokenProxy="invalid-value"), None, ErrorKind.INVALID_ARGUMENT,
         "failed to parse useAzureTokenProxy"),
        (None, base(usePodIdentity="true", useAzureTokenProxy="true"), None, ErrorKind.INVALID_ARGUMENT,
         "only one identity mode can be enabled at a time"),
        (None, base(usePodIdentity="true", useVMManagedIdentity="1"), None, ErrorKind.INVALID_ARGUMENT,
         "only one identity mode can be enabled at a time"),
        (None, base(usePodIdentity="true"), None, ErrorKind.INVALID_ARGUMENT,
         "usePodIdentity (aad-pod-identity) is retired and not supported: use workload identity"),
        (None, base(useAzureTokenProxy="true", useVMManagedIdentity="true", clientID="c"), None,
         ErrorKind.INVALID_ARGUMENT, "only one identity mode can be enabled at a time"),
        # identity binding (the official provider's three checks, in its order)
        (None, base(useAzureTokenProxy="true"), SP_SECRETS, ErrorKind.INVALID_ARGUMENT,
         "clientID is required for identity binding (useAzureTokenProxy): set it to the client ID"),
        (None, base(useAzureTokenProxy="true", clientID="c/d"), None, ErrorKind.INVALID_ARGUMENT,
         "clientID must be the client ID"),
        (None, base(useAzureTokenProxy="true", clientID="c"), SP_SECRETS, ErrorKind.UNAUTHENTICATED,
         "service account tokens are required for identity binding (useAzureTokenProxy), and the driver sent none; "
         "add {audience: api://AKSIdentityBinding} to the CSIDriver's spec.tokenRequests"),
        (None, base(cloudName="AzureCloud1"), None, ErrorKind.INVALID_ARGUMENT,
         "cloudName 'AzureCloud1' is not valid"),
        (None, base(cloudName="AzureStackCloud"), None, ErrorKind.INVALID_ARGUMENT,
         "cloudName AzureStackCloud needs cloudEnvFileName"),
        (None, base(cloudName="AzureStackCloud", cloudEnvFileName="/etc/kubernetes/akscustom.json"), None,
         ErrorKind.PERMISSION_DENIED, "cloudEnvFileName names a file on the provider's disk"),
        (None, base(tenantID="../evil"), None, ErrorKind.INVALID_ARGUMENT, "tenantID must be a tenant GUID"),
        # identities (auth_test.go)
        (None, base(), None, ErrorKind.UNAUTHENTICATED, "nodePublishSecretRef secret is not set"),
        (None, base(), {"clientid": "c"}, ErrorKind.UNAUTHENTICATED, "could not find clientsecret in secrets"),
        (None, base(), {"clientsecret": "s"}, ErrorKind.UNAUTHENTICATED, "could not find clientid in secrets"),
        (None, base(clientID="wi-client"), None, ErrorKind.UNAUTHENTICATED,
         "add {audience: api://AzureADTokenExchange} to the CSIDriver's spec.tokenRequests"),
        (None, base(clientID="wi/client"), None, ErrorKind.INVALID_ARGUMENT, "clientID must be the client ID"),
        (None, base(useVMManagedIdentity="true", userAssignedIdentityID="a b"), None, ErrorKind.INVALID_ARGUMENT,
         "userAssignedIdentityID must be the client ID"),
        # objects, after the identity
        (None, base(objects="", useVMManagedIdentity="true"), None, ErrorKind.INVALID_ARGUMENT, "objects is not set"),
        (None, base(objects="- objectName: s", useVMManagedIdentity="true"), None, ErrorKind.INVALID_ARGUMENT,
         "objects must be a YAML mapping with an 'array' list"),
        (None, base(objects="array:\n  - |\n    objectName: secret1\n    objectType: secret\n    objectFormat: pkcs\n",
                    useVMManagedIdentity="true"), None, ErrorKind.INVALID_ARGUMENT,
         "object 0 (secret 'secret1'): invalid objectFormat: pkcs, should be PEM or PFX"),
        # vault names (TestGetVaultURL)
        (None, base(keyvaultName="longkeyvaultnamewhichisnotvalid", useVMManagedIdentity="true"), None,
         ErrorKind.INVALID_ARGUMENT, "is not a valid vault name"),
        (None, base(keyvaultName="kv", useVMManagedIdentity="true"), None, ErrorKind.INVALID_ARGUMENT,
         "is not a valid vault name"),
        (None, base(keyvaultName="kv_test", useVMManagedIdentity="true"), None, ErrorKind.INVALID_ARGUMENT,
         "is not a valid vault name"),
    ],
)
def test_plan_errors(pod: dict[str, str] | None, params: dict[str, str], secrets: dict[str, str] | None,
                     kind: ErrorKind, message: str) -> None:
    error = plan_error(context(params, pod, secrets))
    assert error.kind is kind
    assert message in error.message


def test_identity_binding_without_a_token_for_its_audience() -> None:
    error = plan_error(context(base(useAzureTokenProxy="true", clientID="c"), tokens={AUDIENCE: "wi-jwt"}))
    assert error.kind is ErrorKind.UNAUTHENTICATED
    assert error.message.startswith("token for audience api://AKSIdentityBinding not found: identity binding")
    assert "(audiences sent: 'api://AzureADTokenExchange')" in error.message


def test_identity_modes_are_metric_label_values() -> None:
    assert set(IDENTITY_MODES) <= set(DECLARATION.identity_modes)
    plan = build_plan(context(base(useAzureTokenProxy="true", clientID="c"), tokens={BINDING: "j"}), AzureOptions())
    assert plan.identity_mode == "identity-binding"


def test_tenant_id_is_read_before_the_deprecated_tenantId() -> None:
    plan = build_plan(context(base(tenantID="new", tenantId="old"), secrets=SP_SECRETS), AzureOptions())
    assert plan.identity.tenant_id == "new"
    plan = build_plan(context({**base(tenantId="old"), "tenantID": ""}, secrets=SP_SECRETS), AzureOptions())
    assert plan.identity.tenant_id == "old"


@pytest.mark.parametrize(
    ("params", "secrets", "tokens", "expected"),
    [
        (base(), {"ClientID": "sp-client", "CLIENTSECRET": "sp-secret-value"}, None,
         ServicePrincipal(TENANT, "sp-client", "sp-secret-value")),
        (base(), {"clientid": " sp-client ", "clientsecret": "sp-secret-value\n"}, None,
         ServicePrincipal(TENANT, "sp-client", "sp-secret-value")),
        (base(clientID="wi-client"), SP_SECRETS, {AUDIENCE: "pod-jwt", "other": "x"},
         WorkloadIdentity(TENANT, "wi-client", "team", "app-sa", "pod-jwt")),
        (base(useVMManagedIdentity="true"), None, None, ManagedIdentity(TENANT, "")),
        (base(useVMManagedIdentity="True", userAssignedIdentityID="uami-client"), None, None,
         ManagedIdentity(TENANT, "uami-client")),
        (base(useVMManagedIdentity="1", clientID="ignored"), None, None, ManagedIdentity(TENANT, "")),
        # identity binding: its own audience's token; a nodePublishSecretRef and other tokens are ignored
        (base(useAzureTokenProxy="true", clientID="ib-client"), SP_SECRETS, {BINDING: "pod-jwt", AUDIENCE: "wi"},
         IdentityBinding(TENANT, "ib-client", "team", "app-sa", "pod-jwt")),
        (base(useAzureTokenProxy=" True ", useVMManagedIdentity="false", clientID="ib"), None, {BINDING: "j"},
         IdentityBinding(TENANT, "ib", "team", "app-sa", "j")),
        # off: the binding audience alone is not workload identity's
        (base(useAzureTokenProxy="0", clientID="wi-client"), None, {AUDIENCE: "pod-jwt", BINDING: "other"},
         WorkloadIdentity(TENANT, "wi-client", "team", "app-sa", "pod-jwt")),
    ],
)
def test_identity_selection(params: dict[str, str], secrets: dict[str, str] | None, tokens: dict[str, str] | None,
                            expected: object) -> None:
    assert build_plan(context(params, secrets=secrets, tokens=tokens), AzureOptions()).identity == expected


def test_secrets_and_tokens_never_show_in_the_plan_repr() -> None:
    plan = build_plan(context(base(clientID="c"), tokens={AUDIENCE: "pod-jwt-marker"}), AzureOptions())
    assert "pod-jwt-marker" not in repr(plan)
    plan = build_plan(context(base(), secrets=SP_SECRETS), AzureOptions())
    assert "sp-secret-value" not in repr(plan)
    plan = build_plan(context(base(useAzureTokenProxy="true", clientID="c"), tokens={BINDING: "ib-jwt-marker"}),
                      AzureOptions())
    assert "ib-jwt-marker" not in repr(plan)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("True", True), (" true ", True), ("1", True), ("t", True), ("TRUE", True),
     ("false", False), ("False", False), ("0", False), ("", False), ("F", False)],
)
def test_parse_bool_is_go_strconv(value: str, expected: bool) -> None:
    assert parse_bool(value, Parameter("flag", "")) is expected


@pytest.mark.parametrize("value", ["test", "invalid", "yes", "on", "tru"])
def test_parse_bool_rejects(value: str) -> None:
    with pytest.raises(ProviderError, match="failed to parse flag"):
        parse_bool(value, Parameter("flag", ""))


@pytest.mark.parametrize(
    ("cloud", "url"),
    [("", "https://testkv.vault.azure.net/"), ("AZUREPUBLICCLOUD", "https://testkv.vault.azure.net/"),
     ("AzureChinaCloud", "https://testkv.vault.azure.cn/"), ("azuregermancloud", "https://testkv.vault.microsoftazure.de/"),
     ("AZUREUSGOVERNMENTCLOUD", "https://testkv.vault.usgovcloudapi.net/")],
)
def test_vault_url_per_cloud(cloud: str, url: str) -> None:
    plan = build_plan(context(base(cloudName=cloud), secrets=SP_SECRETS), AzureOptions())
    assert plan.vault_url == url


def test_the_daemon_default_cloud_applies_without_cloud_name() -> None:
    plan = build_plan(context(base(), secrets=SP_SECRETS), AzureOptions(default_cloud="AzureChinaCloud"))
    assert plan.cloud.name == "AzureChinaCloud"


def test_custom_cloud_from_a_file_under_the_allowed_directory(tmp_path: Path) -> None:
    (tmp_path / "stack.json").write_text(json.dumps({
        "name": "AzureStackCloud", "activeDirectoryEndpoint": "https://login.stack.example/",
        "keyVaultEndpoint": "https://vault.stack.example/", "keyVaultDNSSuffix": "vault.stack.example"}))
    options = AzureOptions(policy=AzurePolicy(files=FilesPolicy(allowed_files_dir=str(tmp_path))))
    plan = build_plan(context(base(cloudName="AzureStackCloud", cloudEnvFileName="stack.json"), secrets=SP_SECRETS),
                      options)
    assert plan.vault_url == "https://testkv.vault.stack.example/"
    assert plan.cloud.authority_host == "https://login.stack.example/"
    outside = plan_error(context(base(cloudName="AzureStackCloud", cloudEnvFileName="/etc/hostname"),
                                 secrets=SP_SECRETS), options)
    assert outside.kind is ErrorKind.PERMISSION_DENIED


def objects(*specs: str) -> str:
    return "array:\n" + "".join("  - |\n" + "".join(f"    {line}\n" for line in s.split(";")) for s in specs)


@pytest.mark.parametrize(
    ("specs", "ids"),
    [
        (["objectName: s1;objectType: secret", "objectName: k1;objectType: key"], ["secret/s1", "key/k1"]),
        # the official id ignores the alias; two objects differing only by alias would share one
        (["objectName: s1;objectType: secret", "objectName: s1;objectType: secret;objectAlias: copy"],
         ["secret/s1@s1", "secret/s1@copy"]),
        (["objectName: s1;objectType: secret;objectVersionHistory: 3",
          "objectName: s1;objectType: secret;objectAlias: x"],
         ["secret/s1", "secret/s1"]),
        (["objectName: c1;objectType: cert", "objectName: c1;objectType: secret;objectAlias: c1-secret"],
         ["cert/c1", "secret/c1"]),
        # an object's own keyvaultName: the vault in front of the id, only when it is not the SPC's
        (["objectName: s1;objectType: secret;keyvaultName: other-kv", "objectName: s1;objectType: secret;"
          "objectAlias: x"], ["other-kv/secret/s1", "secret/s1"]),
        (["objectName: s1;objectType: secret;keyvaultName: TestKV"], ["secret/s1"]),
        (["objectName: s1;objectType: secret;keyvaultName: Other-KV", "objectName: s1;objectType: secret;"
          "keyvaultName: other-kv;objectAlias: copy"], ["other-kv/secret/s1@s1", "other-kv/secret/s1@copy"]),
    ],
)
def test_object_ids_gain_the_alias_only_when_they_would_clash(specs: list[str], ids: list[str]) -> None:
    plan = build_plan(context(base(objects=objects(*specs)), secrets=SP_SECRETS), AzureOptions())
    assert [p.object_id for p in plan.objects] == ids


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        (["objectName: s1;objectType: secret", "objectName: s1;objectType: secret"], "both write 's1'"),
        (["objectName: s1;objectType: secret", "objectName: k1;objectType: key;objectAlias: s1"], "both write 's1'"),
        (["objectName: a;objectType: secret", "objectName: b;objectType: secret;objectAlias: a/b"],
         "writes the file 'a', but object 1 (secret 'b') needs it to be a directory"),
        (["objectName: a;objectType: secret;objectVersionHistory: 2",
          "objectName: b;objectType: secret;objectAlias: a/x"],
         "keeps its version history in the directory 'a'"),
    ],
)
def test_two_objects_on_one_path_are_rejected_before_any_fetch(specs: list[str], message: str) -> None:
    error = plan_error(context(base(objects=objects(*specs)), secrets=SP_SECRETS))
    assert error.kind is ErrorKind.INVALID_ARGUMENT
    assert message in error.message


def test_object_spec_is_canonical_and_has_no_secret() -> None:
    plan = build_plan(context(base(), secrets=SP_SECRETS), AzureOptions())
    spec = json.loads(plan.objects[0].spec)
    assert spec == {"vault": "https://testkv.vault.azure.net/", "type": "secret", "name": "secret1", "alias": "",
                    "version": "", "history": 0, "format": "pem", "encoding": "utf-8", "mode": None}


def test_history_files_have_a_spec_per_version() -> None:
    plan = build_plan(context(base(), secrets=SP_SECRETS), AzureOptions())
    obj = plan.objects[0].obj
    specs = [json.loads(obj.spec(plan.vault_url, index)) for index in (0, 1)]
    assert [s.pop("historyIndex") for s in specs] == [0, 1]
    assert specs[0] == specs[1] == json.loads(plan.objects[0].spec)


def test_an_object_reads_its_own_vault_in_the_spcs_cloud() -> None:
    specs = ["objectName: s1;objectType: secret", "objectName: s2;objectType: secret;keyvaultName: other-kv"]
    plan = build_plan(context(base(objects=objects(*specs), cloudName="AzureChinaCloud"), secrets=SP_SECRETS),
                      AzureOptions())
    assert [p.vault_url for p in plan.objects] == ["https://testkv.vault.azure.cn/", "https://other-kv.vault.azure.cn/"]
    assert json.loads(plan.objects[1].spec)["vault"] == "https://other-kv.vault.azure.cn/"
    assert plan.vault_url == "https://testkv.vault.azure.cn/"
