"""Fixtures for the end-to-end tests that need a Vault daemon (the OpenBao `cluster` is in tests/conftest.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support.daemon import Daemon, start_daemon
from tests.support.openbao import Cluster, daemon_env


@pytest.fixture(scope="module")
def vault_daemon(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A daemon serving the vault socket, with a fixed version key and OpenBao as its default address."""
    directory = tmp_path_factory.mktemp("vault-daemon")
    key = directory / "version.key"
    key.write_bytes(os.urandom(32))
    with start_daemon(directory / "providers", ["vault"],
                      ["--vault-addr", cluster.bao.address, "--version-key-file", str(key)],
                      env=daemon_env(cluster, directory)) as running:
        yield running
