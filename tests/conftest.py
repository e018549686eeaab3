"""Fixtures shared by every test directory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.daemon import Daemon, start_daemon
from tests.support.openbao import Cluster, shared_cluster

# Fixture modules, registered once for every test directory (a test names the fixture, never imports it).
pytest_plugins = ["tests.support.azure_fake.fixtures"]


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Cluster:
    """The configured OpenBao, stub kube-apiserver and issuer: one per test process, started on first use."""
    return shared_cluster(tmp_path_factory.mktemp("openbao"))


@pytest.fixture
def daemon_factory(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    """Start daemons on fresh provider dirs under tmp_path; every one is stopped at teardown."""
    started: list[Daemon] = []

    def factory(backends: list[str], extra_args: list[str] | None = None, **kwargs: object) -> Daemon:
        provider_dir = tmp_path / f"providers{len(started)}"
        daemon = start_daemon(provider_dir, backends, extra_args or [], **kwargs)  # type: ignore[arg-type]
        started.append(daemon)
        daemon.wait_ready()
        return daemon

    yield factory
    for daemon in started:
        daemon.stop()


def _register_hypothesis_profiles() -> None:
    import os

    from hypothesis import HealthCheck, settings

    # The default profile keeps `make test` fast; `make fuzz` sets HYPOTHESIS_PROFILE=long.
    settings.register_profile("default", suppress_health_check=[HealthCheck.too_slow], print_blob=True)
    settings.register_profile("long", max_examples=100_000, suppress_health_check=list(HealthCheck), deadline=None)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


_register_hypothesis_profiles()
