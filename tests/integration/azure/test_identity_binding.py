"""AKS identity binding in this process, through the real azure-identity client and its proxy transport,
against the fake cluster: the API server's certificate (SNI name computed from it), the token proxy found
by its SNI name and trusted through the cluster CA only, and every way that can go wrong."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from prometheus_client import REGISTRY

from provider.backends.azure.backend import AzureBackend
from provider.backends.azure.config import AzureOptions
from provider.backends.azure.tokenproxy import TokenProxySettings
from provider.errors import ErrorKind
from provider.localdriver import build_mount_request
from provider.observability import AuditLog
from provider.output import VersionKey
from provider.server import MountServicer
from tests.integration.azure.test_backend_against_fake import SECRET, mount, mount_error
from tests.support.azure_fake.cluster import API_SERVER_HOST, BINDING_AUDIENCE, PROXY
from tests.support.azure_fake.entra import EXCHANGE_AUDIENCE
from tests.support.azure_fake.fixtures import azure_world, in_process  # noqa: F401 - fixtures
from tests.support.azure_fake.store import Vault
from tests.support.azure_fake.world import World, spc

TOKEN_PATH = "/oauth2/v2.0/token"


def binding_backend(world: World, **settings: Any) -> AzureBackend:
    proxy = TokenProxySettings(**{"ca_file": str(world.fake.cluster.ca_file), **settings})
    return AzureBackend(AzureOptions(token_proxy=proxy))


@pytest.fixture
def vault(in_process: World) -> Vault:  # noqa: F811
    vault = in_process.vault("kv-binding")
    vault.set_secret("secret1", "through the proxy")
    return vault


def test_a_mount_goes_through_the_proxy_with_the_computed_sni_name(in_process: World, vault: Vault) -> None:  # noqa: F811
    world = in_process
    backend = binding_backend(world)
    files = mount(backend, world, world.binding(vault.name), [SECRET])
    assert [(f.path, f.contents) for f in files] == [("secret1", b"through the proxy")]
    (exchange,) = world.fake.records(TOKEN_PATH, "POST")
    assert (exchange.face, exchange.host, exchange.status, exchange.client_id) == (
        PROXY, API_SERVER_HOST, 200, world.ib.client_id)
    assert backend.token_proxy.route(0).sni_name == world.fake.cluster.sni_name


def test_tokens_are_reused_per_service_account_and_never_shared(in_process: World, vault: Vault) -> None:  # noqa: F811
    world = in_process
    world.fake.cluster.bind(world.ib, "default", "second-sa")
    backend = binding_backend(world)
    params = world.binding(vault.name)
    for name in ("web-0", "web-1", "web-0"):  # two pods of one service account, then a rotation poll
        mount(backend, world, params, [SECRET], pod=world.pod(name))
    assert len(world.fake.records(TOKEN_PATH, "POST")) == 1
    mount(backend, world, params, [SECRET], pod=world.pod("other", service_account="second-sa"))
    assert len(world.fake.records(TOKEN_PATH, "POST")) == 2
    # The same client with workload identity is another identity: its own exchange, at Entra ID itself.
    mount(backend, world, world.workload(vault.name), [SECRET])
    faces = [r.face for r in world.fake.records(TOKEN_PATH, "POST")]
    assert faces == [PROXY, PROXY, ""]


def test_an_sni_name_given_by_flag_is_used_without_asking_the_api_server(in_process: World, vault: Vault) -> None:  # noqa: F811
    world = in_process
    world.fake.cluster.aks = False  # the API server's certificate would not give it
    try:
        backend = binding_backend(world, sni_name=world.fake.cluster.sni_name)
        assert mount(backend, world, world.binding(vault.name), [SECRET])[0].contents == b"through the proxy"
    finally:
        world.fake.cluster.aks = True


@pytest.mark.parametrize(
    ("case", "kind", "message"),
    [
        ("not-aks", ErrorKind.UNAUTHENTICATED, "has no DNS name hcp-kubernetes.<cluster id>.svc.cluster.local"),
        ("other-ca", ErrorKind.UNAUTHENTICATED,
         "the API server's certificate (kubernetes.default.svc.cluster.local:443, trusted with"),
        ("no-ca-file", ErrorKind.UNAUTHENTICATED, "does not exist (the provider's pod needs its service account's "
                                                  "ca.crt"),
        ("api-server-down", ErrorKind.UNAVAILABLE, "cannot reach the API server's certificate"),
    ],
)
def test_an_uncomputable_sni_name_fails_before_any_token_request(in_process: World, vault: Vault, case: str,  # noqa: F811
                                                                 kind: ErrorKind, message: str) -> None:
    world = in_process
    settings: dict[str, Any] = {}
    if case == "other-ca":
        settings["ca_file"] = str(world.fake.ca.ca_file)  # the rest of the fake's CA, not the cluster's
    elif case == "no-ca-file":
        settings["ca_file"] = "/nonexistent/ca.crt"
    elif case == "api-server-down":
        settings["api_server_port"] = 6443  # nothing answers there
    world.fake.cluster.aks = case != "not-aks"
    try:
        error = mount_error(binding_backend(world, **settings), world, world.binding(vault.name), [SECRET])
    finally:
        world.fake.cluster.aks = True
    assert error.kind is kind, error.message
    assert message in error.message
    assert "set the daemon flag --sni-name" in error.message
    assert world.fake.records(TOKEN_PATH) == []


def test_an_sni_name_that_failed_is_computed_again_at_the_next_mount(in_process: World, vault: Vault) -> None:  # noqa: F811
    world = in_process
    backend = binding_backend(world)
    world.fake.cluster.aks = False
    try:
        assert mount_error(backend, world, world.binding(vault.name), [SECRET]).kind is ErrorKind.UNAUTHENTICATED
    finally:
        world.fake.cluster.aks = True
    assert mount(backend, world, world.binding(vault.name), [SECRET])[0].contents == b"through the proxy"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize(
    ("case", "kind", "message"),
    [
        ("wrong-sni", ErrorKind.UNAUTHENTICATED, "the TLS connection to the token proxy https://kubernetes.default.svc."
                                                 "cluster.local with SNI name a0wrong.ests.aks failed"),
        ("proxy-not-from-cluster-ca", ErrorKind.UNAUTHENTICATED, "that --token-proxy-ca-file"),
        ("proxy-down", ErrorKind.UNAVAILABLE, "identity binding: cannot reach the token proxy https://127.0.0.1:"),
        ("proxy-503", ErrorKind.UNAVAILABLE, "identity binding login to Entra ID failed: the AKS token proxy answered "
                                             "HTTP 503"),
        ("not-bound", ErrorKind.UNAUTHENTICATED, "may not use managed identity"),
        ("wrong-audience", ErrorKind.UNAUTHENTICATED, "not valid for the identity binding proxy"),
    ],
)
def test_proxy_failures(in_process: World, vault: Vault, case: str, kind: ErrorKind, message: str) -> None:  # noqa: F811
    world = in_process
    settings: dict[str, Any] = {"sni_name": world.fake.cluster.sni_name}
    pod = world.pod()
    tokens = None
    if case == "wrong-sni":
        settings["sni_name"] = "a0wrong.ests.aks"
    elif case == "proxy-not-from-cluster-ca":
        settings["ca_file"] = str(world.fake.ca.ca_file)
    elif case == "proxy-down":
        settings["url"] = f"https://127.0.0.1:{_closed_port()}"
    elif case == "proxy-503":
        world.fake.fail(TOKEN_PATH, status=503, times=None, host=API_SERVER_HOST)
    elif case == "not-bound":
        pod = world.pod(service_account="unbound-sa")
    elif case == "wrong-audience":
        tokens = {BINDING_AUDIENCE: world.pod_token(pod, EXCHANGE_AUDIENCE)}
    error = mount_error(binding_backend(world, **settings), world, world.binding(vault.name), [SECRET], pod=pod,
                        tokens=tokens)
    assert error.kind is kind, error.message
    assert message in error.message
    assert "object 0 (secret 'secret1')" in error.message
    # Never at Entra ID directly: the mode's token requests only go to the proxy.
    assert all(r.face == PROXY for r in world.fake.records(TOKEN_PATH))
    if case == "not-bound":
        assert "ClusterRole with verb use-managed-identity on cid.wi.aks.azure.com" in error.message


class _Context:
    """The part of grpc.ServicerContext that MountServicer uses on a successful mount."""

    def time_remaining(self) -> float:
        return 30.0

    def is_active(self) -> bool:
        return True

    def set_code(self, code: Any) -> None:
        raise AssertionError(f"the mount failed with {code}")

    def set_details(self, details: str) -> None:
        raise AssertionError(details)

    def abort(self, code: Any, details: str) -> None:
        raise AssertionError(f"{code}: {details}")


def test_the_identity_mode_metric_counts_identity_binding_mounts(in_process: World, vault: Vault) -> None:  # noqa: F811
    world = in_process
    servicer = MountServicer(binding_backend(world), VersionKey.random(), AuditLog(None))
    labels = {"backend": "azure", "identity_mode": "identity-binding", "error_kind": ""}
    before = REGISTRY.get_sample_value("provider_identity_mounts_total", labels) or 0.0
    pod = world.pod()
    request = build_mount_request(spc("ib", world.binding(vault.name), [SECRET]), pod,
                                  tokens=world.tokens_for(world.binding(vault.name), pod))
    response = servicer.Mount(request, _Context())  # type: ignore[arg-type]
    assert [f.path for f in response.files] == ["secret1"]
    assert REGISTRY.get_sample_value("provider_identity_mounts_total", labels) == before + 1
