"""pytest fixtures for the Azure tests; a test module imports the ones it uses by name."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.azure_fake import sandbox
from tests.support.azure_fake.daemon import SandboxedDaemon
from tests.support.azure_fake.resolver import resolve_to_fake
from tests.support.azure_fake.server import IMDS_HOST, AzureFake
from tests.support.azure_fake.world import World, build_world


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
