"""Azure failures through the socket: every validation error of the official provider's tests (and the
quirks we turn into errors) fails before any request leaves the daemon; identity and vault failures get
the right gRPC code and a message that says what to check; no secret or token ever shows in an error,
or a log line (metrics: tests/integration/azure)."""

from __future__ import annotations

import json
import time
from typing import Any

import grpc
import pytest

from tests.support.azure_fake.daemon import SandboxedDaemon
from tests.support.azure_fake.entra import EXCHANGE_AUDIENCE
from tests.support.azure_fake.fixtures import Mounts
from tests.support.azure_fake.store import Vault
from tests.support.azure_fake.world import World

SECRET = {"objectName": "secret1", "objectType": "secret"}
INVALID = grpc.StatusCode.INVALID_ARGUMENT


@pytest.fixture(scope="module")
def mounts(azure_world: World, azure_daemon: SandboxedDaemon) -> Mounts:
    return Mounts(azure_world, azure_daemon)


@pytest.fixture(scope="module")
def vault(azure_world: World) -> Vault:
    vault = azure_world.vault("kv-errors")
    vault.set_secret("secret1", "value")
    return vault


def obj(**fields: Any) -> dict[str, Any]:
    return {**SECRET, **fields}


@pytest.mark.parametrize(
    ("params", "objects", "message"),
    [
        ({"keyvaultName": ""}, [SECRET], "keyvaultName is not provided"),
        ({"tenantID": ""}, [SECRET], "tenantId is not provided"),
        ({"usePodIdentity": "tru"}, [SECRET], "failed to parse usePodIdentity flag: 'tru' is not true or false"),
        ({"useVMManagedIdentity": "tru"}, [SECRET], "failed to parse useVMManagedIdentity flag"),
        ({"usePodIdentity": "true"}, [SECRET], "usePodIdentity (aad-pod-identity) is retired and not supported: use "
                                               "workload identity"),
        ({"useVMManagedIdentity": "true", "usePodIdentity": "true"}, [SECRET], "only one identity mode"),
        ({"cloudName": "AzureCloud1"}, [SECRET], "cloudName 'AzureCloud1' is not valid"),
        ({"cloudName": "AzureStackCloud"}, [SECRET], "cloudName AzureStackCloud needs cloudEnvFileName"),
        ({"keyvaultName": "kv"}, [SECRET], "keyvaultName 'kv' is not a valid vault name"),
        ({"keyvaultName": "longkeyvaultnamewhichisnotvalid"}, [SECRET], "is not a valid vault name"),
        ({"keyvaultName": "kv_test"}, [SECRET], "is not a valid vault name"),
        ({"objects": "- objectName: secret1"}, None, "objects must be a YAML mapping with an 'array' list"),
        ({"objects": ""}, None, "objects is not set"),
        ({"objects": "array:\n"}, None, "objects 'array' is empty"),
        ({}, [obj(objectFormat="pkcs")],
         "object 0 (secret 'secret1'): invalid objectFormat: pkcs, should be PEM or PFX"),
        ({}, [obj(objectEncoding="utf-16")], "invalid objectEncoding: utf-16, should be hex, base64 or utf-8"),
        ({}, [obj(objectType="cert", objectFormat="pfx")], "PFX format only supported for objectType: secret"),
        ({}, [obj(objectType="key", objectEncoding="base64")], "objectEncoding only supported for objectType: secret"),
        ({}, [obj(objectAlias="/secret1")], "file name '/secret1' must be a relative path"),
        ({}, [obj(objectAlias="../secret1")], "must not contain '..'"),
        ({}, [obj(objectAlias="secret1/..")], "must not contain '..'"),
        ({}, [{"objectType": "secret"}], "file name must not be empty"),
        # quirks of the official provider that are errors here, before any fetch
        ({}, [obj(objectType="secrets")], "invalid objectType 'secrets', should be secret, key or cert"),
        ({}, [obj(filePermission="0900")], "filePermission '0900' is not an octal file mode"),
        ({}, [SECRET, obj(objectAlias="secret1")], "both write 'secret1'"),
        ({}, [SECRET, obj(objectType="key")], "both write 'secret1'"),
        ({}, [obj(objectAlias="dir"), obj(objectAlias="dir/file")], "needs it to be a directory"),
    ],
)
def test_invalid_spcs_fail_before_any_request(mounts: Mounts, vault: Vault, params: dict[str, str],
                                              objects: list[Any] | None, message: str) -> None:
    world = mounts.world
    world.fake.clear()
    parameters = {**world.workload(vault.name), **params}
    error = mounts.error(parameters, objects)
    assert error.code() is INVALID
    assert message in error.details()
    assert world.fake.records() == []  # not even a token request


@pytest.mark.parametrize(
    ("params", "secrets", "tokens", "code", "message"),
    [
        ({}, None, {}, grpc.StatusCode.UNAUTHENTICATED,
         "add {audience: api://AzureADTokenExchange} to the CSIDriver's spec.tokenRequests"),
        ({}, None, {"api://AKSIdentityBinding": "eyJ.x.y"}, grpc.StatusCode.UNAUTHENTICATED,
         "audiences sent: 'api://AKSIdentityBinding'"),
        ({"clientID": ""}, None, None, grpc.StatusCode.UNAUTHENTICATED, "nodePublishSecretRef secret is not set"),
        ({"clientID": ""}, {"clientid": "x"}, None, grpc.StatusCode.UNAUTHENTICATED,
         "could not find clientsecret in secrets"),
        ({"useAzureTokenProxy": "true", "clientID": ""}, None, None, INVALID,
         "clientID is required for identity binding (useAzureTokenProxy)"),
    ],
)
def test_missing_identities(mounts: Mounts, vault: Vault, params: dict[str, str], secrets: dict[str, str] | None,
                            tokens: dict[str, str] | None, code: grpc.StatusCode, message: str) -> None:
    world = mounts.world
    world.fake.clear()
    parameters = {k: v for k, v in {**world.workload(vault.name), **params}.items() if v}
    error = mounts.error(parameters, [SECRET], secrets=secrets, tokens=tokens)
    assert error.code() is code
    assert message in error.details()
    assert world.fake.records() == []


@pytest.mark.parametrize(
    ("case", "code", "message"),
    [
        ("missing-secret", grpc.StatusCode.NOT_FOUND, "SecretNotFound"),
        ("missing-version", grpc.StatusCode.NOT_FOUND, "check objectName, objectType and objectVersion"),
        ("no-permission", grpc.StatusCode.PERMISSION_DENIED, "grant it 'secrets get' permission"),
        ("not-federated", grpc.StatusCode.UNAUTHENTICATED, "AADSTS70021"),
        ("wrong-client-secret", grpc.StatusCode.UNAUTHENTICATED, "AADSTS7000215"),
        ("history-start-disabled", grpc.StatusCode.NOT_FOUND, "is not one of its enabled versions"),
        ("unknown-vault", grpc.StatusCode.UNAVAILABLE, "does not resolve"),
        ("no-content-type", INVALID, "but has no content type"),
        ("nil-value", INVALID, "secret value is nil"),
        ("bad-pkcs12", INVALID, "the secret's value is not base64 PKCS#12 data"),
        ("p256k-key", INVALID, "curve P-256K is not supported"),
        ("oct-key", INVALID, "failed to get key. key type 'oct' currently not supported"),
        ("nil-cer", INVALID, "certificate value is nil"),
    ],
)
def test_backend_failures(mounts: Mounts, case: str, code: grpc.StatusCode, message: str) -> None:
    world = mounts.world
    vault = world.vault(f"kv-{case}"[:24])
    objects: list[Any] = [SECRET]
    params = world.workload(vault.name)
    secrets = None
    pod = world.pod()
    if case == "missing-version":
        vault.set_secret("secret1", "v")
        objects = [obj(objectVersion="0" * 32)]
    elif case == "no-permission":
        vault.set_secret("secret1", "v")
        vault.revoke(world.wi.principal_id)
    elif case == "not-federated":
        pod = world.pod(service_account="not-federated")
    elif case == "wrong-client-secret":
        params = {"keyvaultName": vault.name, "tenantID": world.tenant_id}
        secrets = {"clientid": world.sp.client_id, "clientsecret": "not-the-secret"}
    elif case == "history-start-disabled":
        disabled = vault.set_secret("secret1", "v", enabled=False)
        vault.set_secret("secret1", "v2")
        objects = [obj(objectVersion=disabled, objectVersionHistory=2)]
    elif case == "unknown-vault":
        params = world.workload("kv-nowhere")
    elif case == "no-content-type":
        vault.set_secret("secret1", "x", kid="https://{host}/keys/secret1/0")
    elif case == "nil-value":
        vault.set_secret("secret1", None)
    elif case == "bad-pkcs12":
        vault.set_secret("secret1", "invalid", "application/x-pkcs12", kid="https://{host}/keys/secret1/0")
    elif case in ("p256k-key", "oct-key"):
        jwk = {"kty": "EC", "crv": "P-256K", "x": "AQ", "y": "Ag"} if case == "p256k-key" else {"kty": "oct", "k": "AA"}
        vault.add_key("secret1", jwk)
        objects = [obj(objectType="key")]
    elif case == "nil-cer":
        vault.add_raw_certificate("secret1", None)
        objects = [obj(objectType="cert")]
    error = mounts.error(params, objects, pod=pod, secrets=secrets)
    assert error.code() is code, error.details()
    assert message in error.details()
    assert f"object 0 ({objects[0]['objectType']} 'secret1')" in error.details()


@pytest.mark.parametrize(("key", "message"), [("csi.storage.k8s.io/pod.name", "pod name is not provided"),
                                              ("csi.storage.k8s.io/pod.namespace", "pod namespace is not provided")])
def test_missing_pod_info(mounts: Mounts, vault: Vault, key: str, message: str) -> None:
    # A CSIDriver without podInfoOnMount: kubelet sends no pod keys.
    request = mounts.request(mounts.world.workload(vault.name), [SECRET])
    attributes = json.loads(request.attributes)
    del attributes[key]
    request.attributes = json.dumps(attributes)
    with pytest.raises(grpc.RpcError) as caught:
        mounts.call(request)
    assert caught.value.code() is INVALID
    assert message in caught.value.details()


def test_no_secret_or_token_in_errors_or_logs(mounts: Mounts, vault: Vault) -> None:
    """Marker values everywhere a credential or a secret travels; none of them may come back out."""
    world = mounts.world
    marker_value = "marker-secret-value-7f3a9c"
    vault.set_secret("marked", marker_value)
    base64_marker = "bWFya2VyLXNlY3JldC12YWx1ZS03ZjNhOWM="
    vault.set_secret("marked-b64", base64_marker)
    pod = world.pod("leak-check")
    pod_token = world.pod_token(pod)
    wrong_secret = "marker-client-secret-4b1d"
    failures: list[str] = []
    mounts.mount(world.workload(vault.name), [{"objectName": "marked", "objectType": "secret"},
                                              {"objectName": "marked-b64", "objectType": "secret",
                                               "objectEncoding": "base64", "objectAlias": "decoded"}],
                 pod=pod, tokens={EXCHANGE_AUDIENCE: pod_token})
    for params, secrets, objects in [
        ({"keyvaultName": vault.name, "tenantID": world.tenant_id},
         {"clientid": world.sp.client_id, "clientsecret": wrong_secret}, [SECRET]),
        ({"keyvaultName": vault.name, "tenantID": world.tenant_id}, world.sp_secrets(),
         [{"objectName": "marked", "objectType": "secret", "objectEncoding": "hex"}]),
        (world.workload(vault.name), None, [{"objectName": "marked", "objectType": "secret", "objectFormat": "x"}]),
        (world.workload(vault.name, objects="array: [\n" + marker_value), None, None),
    ]:
        failures.append(mounts.error(params, objects, pod=pod, secrets=secrets,
                                     tokens={EXCHANGE_AUDIENCE: pod_token}).details())
    time.sleep(0.2)
    logs = mounts.daemon.logs() + mounts.daemon.stdout()
    markers = [marker_value, base64_marker, pod_token, wrong_secret, world.sp_secret,
               *world.fake.directory.issued_tokens()]
    for marker in markers:
        for text in (*failures, logs):
            assert marker not in text
    assert all(failures)
