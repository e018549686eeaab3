"""pytest fixtures for the Azure tests, registered once in tests/conftest.py (pytest_plugins)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from provider._proto import v1alpha1_pb2 as pb
from provider.localdriver import PodIdentity, build_mount_request, call_mount, check_response
from tests.support.azure_fake import sandbox
from tests.support.azure_fake.daemon import SandboxedDaemon
from tests.support.azure_fake.resolver import resolve_to_fake
from tests.support.azure_fake.server import IMDS_HOST, AzureFake
from tests.support.azure_fake.world import World, build_world, spc


@pytest.fixture(scope="module")
def azure_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The fake, started on 127.0.0.1, with a tenant and its identities; stopped after the module."""
    with AzureFake(tmp_path_factory.mktemp("azure-fake")) as fake:
        yield build_world(fake)


@pytest.fixture
def in_process(azure_world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """For tests that call the backend directly: the test process trusts the fake's CA and resolves the
    fake's host names to it (the daemon gets the same through its sandbox)."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(azure_world.fake.ca.ca_file))
    monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", f"https://{IMDS_HOST}")
    azure_world.fake.clear()
    with resolve_to_fake(azure_world.fake.serves, azure_world.fake.port):
        yield azure_world


def require_sandbox() -> None:
    reason = sandbox.available()
    if reason is not None:
        pytest.skip(f"the Azure end-to-end tests run the daemon in a private namespace: {reason}")


def start_sandboxed(world: World, directory: Path, extra_args: list[str] | None = None,
                    env: dict[str, str] | None = None) -> SandboxedDaemon:
    require_sandbox()
    daemon = SandboxedDaemon(world.fake, directory / "providers", extra_args or [], env)
    daemon.wait_ready()
    return daemon


@pytest.fixture(scope="module")
def azure_daemon(azure_world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxedDaemon]:
    """The real daemon serving azure.sock with its default flags, sandboxed to reach only the fake."""
    daemon = start_sandboxed(azure_world, tmp_path_factory.mktemp("azure-daemon"))
    yield daemon
    daemon.stop()


@dataclass
class Mounts:
    """Mount calls through a daemon's azure.sock, built exactly as the driver builds them."""

    world: World
    daemon: SandboxedDaemon

    def request(self, parameters: Mapping[str, str], objects: list[Any] | None = None,
                pod: PodIdentity | None = None, secrets: Mapping[str, str] | None = None,
                tokens: Mapping[str, str] | None = None, permission: int = 0o644) -> pb.MountRequest:
        pod = pod or self.world.pod()
        if tokens is None:
            tokens = self.world.tokens_for(parameters, pod)
        return build_mount_request(spc("azure-spc", parameters, objects), pod, tokens=tokens, secrets=secrets,
                                   permission=permission)

    def call(self, request: pb.MountRequest, timeout: float = 30) -> pb.MountResponse:
        self.daemon.refresh_hosts()  # vaults the test just added
        return call_mount(self.daemon.socket_path("azure"), request, timeout=timeout)

    def mount(self, *args: Any, timeout: float = 30, **kwargs: Any) -> pb.MountResponse:
        response = self.call(self.request(*args, **kwargs), timeout=timeout)
        check_response(response)
        return response

    def error(self, *args: Any, timeout: float = 30, **kwargs: Any) -> grpc.RpcError:
        with pytest.raises(grpc.RpcError) as caught:
            self.call(self.request(*args, **kwargs), timeout=timeout)
        return caught.value


def files_of(response: pb.MountResponse) -> dict[str, bytes]:
    return {f.path: f.contents for f in response.files}


def versions_of(response: pb.MountResponse) -> dict[str, str]:
    return {v.id: v.version for v in response.object_version}
