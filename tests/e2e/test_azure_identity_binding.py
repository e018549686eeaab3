"""AKS identity binding through the socket: the daemon in its private namespaces reaches the fake AKS
cluster at kubernetes.default.svc.cluster.local, computes the token proxy's SNI name from the API server's
certificate (or takes --sni-name), and mounts an SPC written as the official provider's docs write it.
Errors: every missing piece of the SPC or the driver's request, a wrong or uncomputable SNI name, the
proxy down. Token reuse across rotation polls, and the audit record's identity mode."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.support.azure_fake.cluster import API_SERVER_HOST, BINDING_AUDIENCE, PROXY
from tests.support.azure_fake.daemon import SandboxedDaemon
from tests.support.azure_fake.entra import EXCHANGE_AUDIENCE
from tests.support.azure_fake.fixtures import Mounts, azure_world, files_of, start_sandboxed  # noqa: F401
from tests.support.azure_fake.pki import new_key
from tests.support.azure_fake.store import Vault
from tests.support.azure_fake.world import World
from tests.support.driver_client import driver_mount

SECRET = {"objectName": "secret1", "objectType": "secret"}
TOKEN_PATH = "/oauth2/v2.0/token"
# The official provider's identity-binding SPC, as its docs write it (tenantId, the older spelling).
OFFICIAL_OBJECTS = """array:
  - |
    objectName: secret1
    objectType: secret
    objectVersion: ""
  - |
    objectName: key1
    objectType: key
"""


def binding_daemon(world: World, directory: Path, *flags: str, port: str = "443") -> SandboxedDaemon:
    """A daemon as the DaemonSet runs it on AKS: the service account's ca.crt is the cluster CA, and kubelet
    sets KUBERNETES_SERVICE_PORT."""
    args = ["--token-proxy-ca-file", str(world.fake.cluster.ca_file), "--audit-log", str(directory / "audit.log"),
            *flags]
    return start_sandboxed(world, directory, args, env={"KUBERNETES_SERVICE_PORT": port})


@pytest.fixture(scope="module")
def vault(azure_world: World) -> Vault:  # noqa: F811
    vault = azure_world.vault("kv-ib")
    vault.set_secret("secret1", "bound")
    vault.add_key("key1", new_key("P-256"))
    return vault


@pytest.fixture(scope="module")
def computed(azure_world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mounts]:  # noqa: F811
    daemon = binding_daemon(azure_world, tmp_path_factory.mktemp("ib-computed"))
    yield Mounts(azure_world, daemon)
    daemon.stop()


def test_the_official_spc_mounts_through_the_proxy(computed: Mounts, vault: Vault) -> None:
    world = computed.world
    world.fake.clear()
    params = {"usePodIdentity": "false", "useAzureTokenProxy": "true", "clientID": world.ib.client_id,
              "keyvaultName": vault.name, "tenantId": world.tenant_id, "objects": OFFICIAL_OBJECTS}
    files = files_of(computed.mount(params))
    assert files["secret1"] == b"bound"
    assert files["key1"].startswith(b"-----BEGIN PUBLIC KEY-----")
    exchanges = world.fake.records(TOKEN_PATH, "POST")
    assert [(r.face, r.host, r.status, r.client_id) for r in exchanges] == [
        (PROXY, API_SERVER_HOST, 200, world.ib.client_id)]
    # The SNI name came from the API server's certificate: the proxy answers only to that name.
    assert "--sni-name" not in " ".join(computed.daemon.process.args)  # type: ignore[arg-type]


def test_rotation_polls_and_pods_of_one_service_account_make_no_token_request(computed: Mounts,
                                                                               vault: Vault) -> None:
    world = computed.world
    params = world.binding(vault.name)
    computed.mount(params, [SECRET])
    world.fake.clear()
    for name in ("web-0", "web-1", "web-0", "web-1"):  # the driver's rotation polls call Mount again
        assert files_of(computed.mount(params, [SECRET], pod=world.pod(name))) == {"secret1": b"bound"}
    assert world.fake.records(TOKEN_PATH) == []


def test_the_audit_record_names_the_identity_mode(computed: Mounts, vault: Vault) -> None:
    world = computed.world
    computed.mount(world.binding(vault.name), [SECRET], pod=world.pod("audited"))
    computed.mount(world.workload(vault.name), [SECRET], pod=world.pod("audited-wi"))
    audit = computed.daemon.provider_dir.parent / "audit.log"
    records = {r["pod"]["name"]: r for r in map(json.loads, audit.read_text().splitlines())}
    assert records["audited"]["identityMode"] == "identity-binding"
    assert records["audited-wi"]["identityMode"] == "workload-identity"


@pytest.mark.parametrize(
    ("params", "tokens", "code", "message"),
    [
        ({"clientID": ""}, None, grpc.StatusCode.INVALID_ARGUMENT,
         "clientID is required for identity binding (useAzureTokenProxy)"),
        ({}, {}, grpc.StatusCode.UNAUTHENTICATED,
         "service account tokens are required for identity binding (useAzureTokenProxy), and the driver sent none; "
         "add {audience: api://AKSIdentityBinding} to the CSIDriver's spec.tokenRequests"),
        ({}, "workload-only", grpc.StatusCode.UNAUTHENTICATED,
         "token for audience api://AKSIdentityBinding not found"),
        ({"useVMManagedIdentity": "true"}, None, grpc.StatusCode.INVALID_ARGUMENT, "only one identity mode"),
        ({"usePodIdentity": "True"}, None, grpc.StatusCode.INVALID_ARGUMENT, "only one identity mode"),
        ({"useAzureTokenProxy": "yes"}, None, grpc.StatusCode.INVALID_ARGUMENT,
         "failed to parse useAzureTokenProxy flag: 'yes' is not true or false"),
    ],
)
def test_missing_pieces_fail_before_any_request(computed: Mounts, vault: Vault, params: dict[str, str],
                                                tokens: Any, code: grpc.StatusCode, message: str) -> None:
    world = computed.world
    world.fake.clear()
    parameters = {k: v for k, v in {**world.binding(vault.name), **params}.items() if v}
    pod = world.pod()
    if tokens == "workload-only":
        tokens = {EXCHANGE_AUDIENCE: world.pod_token(pod)}
    error = computed.error(parameters, [SECRET], pod=pod, tokens=tokens)
    assert error.code() is code
    assert message in error.details()
    assert world.fake.records() == []


def test_an_sni_name_given_by_flag(azure_world: World, vault: Vault, tmp_path: Path) -> None:  # noqa: F811
    world = azure_world
    world.fake.cluster.aks = False  # the API server could not tell it: the flag must be what is used
    daemon = binding_daemon(world, tmp_path, "--sni-name", world.fake.cluster.sni_name)
    try:
        assert files_of(Mounts(world, daemon).mount(world.binding(vault.name), [SECRET])) == {"secret1": b"bound"}
    finally:
        world.fake.cluster.aks = True
        daemon.stop()


@pytest.mark.parametrize(
    ("case", "code", "message"),
    [
        ("wrong-sni", grpc.StatusCode.UNAUTHENTICATED,
         "identity binding: the TLS connection to the token proxy https://kubernetes.default.svc.cluster.local "
         "with SNI name a0000000000.ests.aks failed (Hostname mismatch"),
        ("not-aks", grpc.StatusCode.UNAUTHENTICATED,
         "has no DNS name hcp-kubernetes.<cluster id>.svc.cluster.local (is this an AKS cluster with identity "
         "bindings?); set the daemon flag --sni-name"),
        ("api-server-unreachable", grpc.StatusCode.UNAVAILABLE,
         "cannot reach the API server's certificate (kubernetes.default.svc.cluster.local:6443"),
        ("proxy-down", grpc.StatusCode.UNAVAILABLE,
         "identity binding: cannot reach the token proxy https://kubernetes.default.svc.cluster.local:8443 "
         "(Connection refused); the driver retries the mount"),
    ],
)
def test_sni_and_proxy_failures(azure_world: World, vault: Vault, tmp_path: Path, case: str,  # noqa: F811
                                code: grpc.StatusCode, message: str) -> None:
    world = azure_world
    flags: list[str] = []
    port = "443"
    if case == "wrong-sni":
        flags = ["--sni-name", "a0000000000.ests.aks"]
    elif case == "api-server-unreachable":
        port = "6443"  # nothing listens there in the daemon's network namespace
    elif case == "proxy-down":
        flags = ["--token-proxy-url", "https://kubernetes.default.svc.cluster.local:8443"]
    daemon = binding_daemon(world, tmp_path, *flags, port=port)
    world.fake.cluster.aks = case != "not-aks"
    world.fake.clear()
    try:
        error = Mounts(world, daemon).error(world.binding(vault.name), [SECRET])
        assert error.code() is code, error.details()
        assert message in error.details()
        assert all(r.face == PROXY for r in world.fake.records(TOKEN_PATH))
        assert [r for r in world.fake.records("^/secrets/") if r.authorized] == []
    finally:
        world.fake.cluster.aks = True
        daemon.stop()


def test_the_binding_audience_is_not_workload_identitys(computed: Mounts, vault: Vault) -> None:
    """A token for api://AKSIdentityBinding never stands in for workload identity's, nor the reverse: the
    proxy refuses a token of the other audience."""
    world = computed.world
    world.fake.cluster.bind(world.ib, "default", "audience-check")  # an identity with nothing cached yet
    pod = world.pod(service_account="audience-check")
    error = computed.error(world.workload(vault.name), [SECRET], pod=pod,
                           tokens={BINDING_AUDIENCE: world.pod_token(pod, BINDING_AUDIENCE)})
    assert error.code() is grpc.StatusCode.UNAUTHENTICATED
    error = computed.error(world.binding(vault.name), [SECRET], pod=pod,
                           tokens={BINDING_AUDIENCE: world.pod_token(pod, EXCHANGE_AUDIENCE)})
    assert error.code() is grpc.StatusCode.UNAUTHENTICATED
    assert "not valid for the identity binding proxy" in error.details()


def test_no_token_in_errors_or_logs(computed: Mounts, vault: Vault) -> None:
    world = computed.world
    world.fake.cluster.bind(world.ib, "default", "leak-check")
    pod = world.pod("leak-check", service_account="leak-check")
    token = world.pod_token(pod, BINDING_AUDIENCE)
    computed.mount(world.binding(vault.name), [SECRET], pod=pod, tokens={BINDING_AUDIENCE: token})
    unbound = world.pod("leak-unbound", service_account="leak-unbound")
    unbound_token = world.pod_token(unbound, BINDING_AUDIENCE)
    failure = computed.error(world.binding(vault.name), [SECRET], pod=unbound,
                             tokens={BINDING_AUDIENCE: unbound_token}).details()
    logs = computed.daemon.logs() + computed.daemon.stdout()
    for marker in (token, unbound_token, *world.fake.directory.issued_tokens()):
        assert marker not in failure
        assert marker not in logs


def test_proxy_down_is_retried_by_the_driver(azure_world: World, vault: Vault, tmp_path: Path) -> None:  # noqa: F811
    """UNAVAILABLE reaches the driver's client trailers-only, so its retry policy makes all 3 attempts within
    the one call; each attempt is one audit record on the provider's side."""
    world = azure_world
    daemon = binding_daemon(world, tmp_path, "--token-proxy-url", "https://kubernetes.default.svc.cluster.local:8443")
    try:
        mounts = Mounts(world, daemon)
        daemon.refresh_hosts()
        with pytest.raises(grpc.RpcError) as caught:
            driver_mount(daemon.socket_path("azure"), mounts.request(world.binding(vault.name), [SECRET]),
                         timeout=60)
        assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
        records = [json.loads(line) for line in (tmp_path / "audit.log").read_text().splitlines()]
        assert [(r["identityMode"], r["errorKind"]) for r in records] == [("identity-binding", "Unavailable")] * 3
    finally:
        daemon.stop()
