"""The backend in this process against the fake, through the real azure-identity and azure-keyvault
clients: identities, token reuse, paging, throttling, server errors, deadlines, parallel reads."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from provider.backends.azure.backend import AzureBackend
from provider.backends.azure.config import AzureOptions
from provider.backends.azure.policy import AzurePolicy
from provider.contract import plan_mount
from provider.errors import ErrorKind, ProviderError
from provider.files import SecretFile
from provider.localdriver import PodIdentity, build_mount_request
from provider.metrics import Metrics
from provider.policy import FilesPolicy
from provider.request import parse_mount_request
from tests.support.azure_fake.entra import EXCHANGE_AUDIENCE
from tests.support.azure_fake.pki import new_key
from tests.support.azure_fake.server import STACK, cloud_file
from tests.support.azure_fake.world import World, spc

SECRET = {"objectName": "secret1", "objectType": "secret"}


def mount(backend: AzureBackend, world: World, params: Mapping[str, str], objects: list[Any],
          pod: PodIdentity | None = None, secrets: Mapping[str, str] | None = None,
          tokens: Mapping[str, str] | None = None, budget: float = 30.0) -> list[SecretFile]:
    """One Mount, as the server runs it: the driver's request → plan → fetch."""
    pod = pod or world.pod()
    if tokens is None:
        tokens = world.tokens_for(params, pod)
    request = build_mount_request(spc("spc", params, objects), pod, tokens=tokens, secrets=secrets)
    ctx = parse_mount_request(request.attributes, request.secrets, request.permission, request.target_path)
    return backend.fetch(plan_mount(backend, ctx), time.monotonic() + budget)


def mount_error(*args: Any, **kwargs: Any) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        mount(*args, **kwargs)
    return caught.value


@pytest.fixture
def backend() -> AzureBackend:
    return AzureBackend(AzureOptions())


@pytest.mark.parametrize("identity", ["workload", "service-principal", "system-assigned", "user-assigned"])
def test_each_identity_reads_the_vault(in_process: World, backend: AzureBackend, identity: str) -> None:
    world = in_process
    vault = world.vault(f"kv-{identity}")
    version = vault.set_secret("secret1", "value-1")
    params: dict[str, str] = {"keyvaultName": vault.name, "tenantID": world.tenant_id}
    secrets = None
    if identity == "workload":
        params["clientID"] = world.wi.client_id
    elif identity == "service-principal":
        secrets = world.sp_secrets()
    else:
        params["useVMManagedIdentity"] = "true"
        if identity == "user-assigned":
            params["userAssignedIdentityID"] = world.user_identity.client_id
    files = mount(backend, world, params, [SECRET], secrets=secrets)
    assert [(f.path, f.contents, f.object_id, f.version) for f in files] == [
        ("secret1", b"value-1", "secret/secret1", version)]


def test_tokens_are_reused_per_identity_and_never_shared(in_process: World, backend: AzureBackend) -> None:
    world = in_process
    vault = world.vault("kv-reuse")
    vault.set_secret("secret1", "v")
    params = world.workload(vault.name)
    for name in ("app-1", "app-2", "app-3"):
        mount(backend, world, params, [SECRET], pod=world.pod(name))
    token_requests = world.fake.records("/oauth2/v2.0/token", "POST")
    assert len(token_requests) == 1
    # Same client ID, another service account that is not federated: no cached token for it.
    error = mount_error(backend, world, params, [SECRET], pod=world.pod("intruder", service_account="other-sa"))
    assert error.kind is ErrorKind.UNAUTHENTICATED
    assert "AADSTS70021" in error.message
    assert "system:serviceaccount:default:other-sa" in error.message


def test_a_wrong_client_secret_never_reaches_a_cached_token(in_process: World, backend: AzureBackend) -> None:
    world = in_process
    vault = world.vault("kv-sp-cache")
    vault.set_secret("secret1", "v")
    params = {"keyvaultName": vault.name, "tenantID": world.tenant_id}
    mount(backend, world, params, [SECRET], secrets=world.sp_secrets())
    error = mount_error(backend, world, params, [SECRET],
                        secrets={"clientid": world.sp.client_id, "clientsecret": "wrong-secret-marker"})
    assert error.kind is ErrorKind.UNAUTHENTICATED
    assert "AADSTS7000215" in error.message and "wrong-secret-marker" not in error.message


def test_history_follows_next_link_pages(in_process: World, backend: AzureBackend) -> None:
    world = in_process
    vault = world.vault("kv-pages")
    versions = [vault.set_secret("secret1", f"value-{i}") for i in range(5)]
    files = mount(backend, world, world.workload(vault.name),
                  [{**SECRET, "objectVersionHistory": 4}])
    assert [(f.path, f.contents, f.version) for f in files] == [
        (f"secret1/{i}", f"value-{4 - i}".encode(), versions[4 - i]) for i in range(4)]
    assert len(world.fake.records("/secrets/secret1/versions")) >= 3  # page size 2: three pages (+ a challenge)


def test_throttling_is_retried_after_retry_after(in_process: World, backend: AzureBackend) -> None:
    world = in_process
    vault = world.vault("kv-throttle")
    vault.set_secret("secret1", "v")
    mount(backend, world, world.workload(vault.name), [SECRET])  # warm: challenge and token done
    world.fake.clear()
    world.fake.fail(r"^/secrets/secret1/$", status=429, times=1, retry_after="1")
    started = time.monotonic()
    files = mount(backend, world, world.workload(vault.name), [SECRET])
    assert files[0].contents == b"v"
    assert [r.status for r in world.fake.records("/secrets/secret1/")] == [429, 200]
    assert 1.0 <= time.monotonic() - started < 3.0


def test_server_errors_are_retried_with_backoff(in_process: World, backend: AzureBackend) -> None:
    world = in_process
    vault = world.vault("kv-500")
    vault.set_secret("secret1", "v")
    world.fake.fail(r"^/secrets/secret1/$", status=500, times=2)
    assert mount(backend, world, world.workload(vault.name), [SECRET])[0].contents == b"v"
    # The first request of a new vault goes without a token (to get the challenge); the faults hit it.
    assert [r.status for r in world.fake.records("/secrets/secret1/")] == [500, 500, 401, 200]


def test_a_retry_after_past_the_deadline_fails_at_once(in_process: World, backend: AzureBackend) -> None:
    world = in_process
    vault = world.vault("kv-throttle-long")
    vault.set_secret("secret1", "v")
    world.fake.fail(r"^/secrets/secret1/$", status=429, times=None, retry_after="60")
    started = time.monotonic()
    error = mount_error(backend, world, world.workload(vault.name), [SECRET], budget=10)
    assert error.kind is ErrorKind.UNAVAILABLE
    assert "throttled" in error.message and "asked to wait 60s" in error.message
    assert time.monotonic() - started < 3


def test_persistent_server_errors_end_unavailable(in_process: World, backend: AzureBackend) -> None:
    world = in_process
    vault = world.vault("kv-503")
    vault.set_secret("secret1", "v")
    world.fake.fail(r"^/secrets/secret1/$", status=503, times=None)
    error = mount_error(backend, world, world.workload(vault.name), [SECRET])
    assert error.kind is ErrorKind.UNAVAILABLE
    assert "after 4 attempts" in error.message


def test_a_hanging_vault_meets_the_deadline(in_process: World, backend: AzureBackend) -> None:
    world = in_process
    vault = world.vault("kv-slow")
    vault.set_secret("secret1", "v")
    mount(backend, world, world.workload(vault.name), [SECRET])
    world.fake.fail(r"^/secrets/secret1/$", status=None, times=None, delay=4.0)
    started = time.monotonic()
    error = mount_error(backend, world, world.workload(vault.name), [SECRET], budget=1.0)
    assert error.kind is ErrorKind.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 1.5


def test_objects_are_read_in_parallel_and_once(in_process: World, backend: AzureBackend) -> None:
    world = in_process
    vault = world.vault("kv-parallel")
    names = [f"s{i}" for i in range(6)]
    for name in names:
        vault.set_secret(name, name)
    mount(backend, world, world.workload(vault.name), [SECRET | {"objectName": "s0"}])
    world.fake.clear()
    world.fake.fail(r"^/secrets/s\d/$", status=None, times=None, delay=0.5)
    objects = [{"objectName": n, "objectType": "secret"} for n in names]
    objects.append({"objectName": "s0", "objectType": "secret", "objectAlias": "s0-again"})
    started = time.monotonic()
    files = mount(backend, world, world.workload(vault.name), objects)
    assert time.monotonic() - started < 1.5  # six 0.5 s reads, one after another, would take 3 s
    assert [f.path for f in files] == [*names, "s0-again"]
    assert len(world.fake.records(r"^/secrets/s0/$")) == 1


@pytest.mark.parametrize(
    ("setup", "objects", "kind", "message"),
    [
        (lambda v, w: None, [SECRET], ErrorKind.NOT_FOUND, "SecretNotFound: A secret with (name/id) secret1 was not"),
        (lambda v, w: v.set_secret("secret1", "x"), [{**SECRET, "objectVersion": "0" * 32}], ErrorKind.NOT_FOUND,
         "check objectName, objectType and objectVersion"),
        (lambda v, w: v.revoke(w.wi.principal_id), [SECRET], ErrorKind.PERMISSION_DENIED,
         "(HTTP 403 Forbidden/AccessDenied: The user, group or application"),
        (lambda v, w: (v.set_secret("secret1", "x"), v.revoke(w.wi.principal_id),
                       v.grant(w.wi.principal_id, "secrets/get")),
         [{**SECRET, "objectVersionHistory": 2}], ErrorKind.PERMISSION_DENIED, "grant it 'list' permission"),
        (lambda v, w: v.set_secret("secret1", "x", enabled=False), [SECRET], ErrorKind.PERMISSION_DENIED,
         "Forbidden/SecretDisabled: Operation get is not allowed on a disabled secret"),
        (lambda v, w: v.add_key("key1", {"kty": "oct", "k": "AAAA"}), [{"objectName": "key1", "objectType": "key"}],
         ErrorKind.INVALID_ARGUMENT, "key type 'oct' currently not supported"),
        (lambda v, w: v.set_secret("secret1", "x", kid="https://{host}/keys/secret1/v"), [SECRET],
         ErrorKind.INVALID_ARGUMENT, "but has no content type"),
        (lambda v, w: w.fake.fail(r"^/secrets/secret1/$", status=401, times=None, host=v.name), [SECRET],
         ErrorKind.UNAUTHENTICATED, "did not accept the access token (HTTP 401"),
        (lambda v, w: w.fake.fail(r"^/secrets/secret1/$", status=418, times=None, host=v.name), [SECRET],
         ErrorKind.UNAVAILABLE, "answered HTTP 418"),
    ],
)
def test_vault_answers_become_errors_that_say_what_to_check(
    in_process: World, backend: AzureBackend, setup: Any, objects: list[Any], kind: ErrorKind, message: str
) -> None:
    world = in_process
    vault = world.vault(f"kv-err-{abs(hash(message)) % 10_000}")
    setup(vault, world)
    error = mount_error(backend, world, world.workload(vault.name), objects)
    assert error.kind is kind
    assert message in error.message
    assert "object 0 (" in error.message


def test_an_unknown_vault_is_unreachable(in_process: World, backend: AzureBackend) -> None:
    error = mount_error(backend, in_process, in_process.workload("no-such-vault"), [SECRET])
    assert error.kind is ErrorKind.UNAVAILABLE
    assert "the host name of Key Vault https://no-such-vault.vault.azure.net/ does not resolve" in error.message


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("unknown-user-identity", "user-assigned identity"),
        ("expired-token", "AADSTS700024"),
        ("wrong-audience-token", "AADSTS70021"),
        ("foreign-tenant", "belongs to tenant"),
    ],
)
def test_login_failures_are_unauthenticated(in_process: World, backend: AzureBackend, case: str,
                                            message: str) -> None:
    world = in_process
    vault = world.vault(f"kv-{case[:20]}")
    vault.set_secret("secret1", "v")
    pod = world.pod()
    params = world.workload(vault.name)
    tokens = None
    if case == "unknown-user-identity":
        params = {"keyvaultName": vault.name, "tenantID": world.tenant_id, "useVMManagedIdentity": "true",
                  "userAssignedIdentityID": "00000000-0000-0000-0000-000000000000"}
    elif case == "expired-token":
        expired = world.issuer.pod_token(namespace=pod.namespace, service_account=pod.service_account,
                                         pod_name=pod.name, pod_uid=pod.uid, audience=EXCHANGE_AUDIENCE,
                                         issued_at=time.time() - 3600)
        tokens = {EXCHANGE_AUDIENCE: expired}
    elif case == "wrong-audience-token":
        tokens = {EXCHANGE_AUDIENCE: world.pod_token(pod, audience="https://kubernetes.default.svc")}
    else:
        params = {**params, "tenantID": "11111111-2222-3333-4444-555555555555"}
    error = mount_error(backend, world, params, [SECRET], pod=pod, tokens=tokens)
    assert error.kind is ErrorKind.UNAUTHENTICATED
    assert message in error.message


def test_custom_cloud_from_the_allowed_directory(in_process: World, tmp_path: Any) -> None:
    world = in_process
    vault = world.vault("kv-stack", STACK)
    vault.set_secret("secret1", "on azure stack")
    path = cloud_file(tmp_path)
    backend = AzureBackend(AzureOptions(policy=AzurePolicy(files=FilesPolicy(allowed_files_dir=str(tmp_path)))))
    params = world.workload(vault.name, cloudName="AzureStackCloud", cloudEnvFileName=path.name)
    assert mount(backend, world, params, [SECRET])[0].contents == b"on azure stack"
    assert {r.host for r in world.fake.records()} == {"kv-stack.vault.azurestack.test", "login.azurestack.test"}


def test_keys_of_each_kind(in_process: World, backend: AzureBackend) -> None:
    world = in_process
    vault = world.vault("kv-keys")
    from cryptography.hazmat.primitives import serialization

    kinds = ["rsa", "P-256", "P-384", "P-521"]
    keys = {kind: new_key(kind) for kind in kinds}
    for kind, key in keys.items():
        vault.add_key(f"key-{kind.lower()}", key)
    files = mount(backend, world, world.workload(vault.name),
                  [{"objectName": f"key-{k.lower()}", "objectType": "key"} for k in kinds])
    for file, kind in zip(files, kinds, strict=True):
        assert file.contents == keys[kind].public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)



def test_metrics_have_fixed_labels_and_no_secrets(in_process: World) -> None:
    world = in_process
    metrics = Metrics(CollectorRegistry())
    backend = AzureBackend(AzureOptions(), metrics)
    vault = world.vault("kv-metrics")
    vault.set_secret("secret1", "metric-marker-value")
    history = {**SECRET, "objectAlias": "h", "objectVersionHistory": 2}
    mount(backend, world, world.workload(vault.name), [SECRET, history])
    mount_error(backend, world, world.workload(vault.name), [{"objectName": "missing", "objectType": "key"}])
    text = generate_latest(metrics.registry).decode()
    azure_lines = [line for line in text.splitlines() if 'backend="azure"' in line]
    operations = {line.split('operation="')[1].split('"')[0] for line in azure_lines if 'operation="' in line}
    assert {"get_secret", "list_versions", "get_key", "token"} <= operations
    assert 'provider_cache_lookups_total{backend="azure",cache="token",result="hit"}' in text
    assert 'status_class="4xx"' in text
    markers = ("metric-marker-value", vault.name, "secret1", world.sp_secret, *world.fake.directory.issued_tokens())
    for marker in markers:
        assert marker not in text
