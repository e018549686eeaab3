"""Leased credentials in the backend against a real OpenBao: kept through a Vault outage while they are valid."""

from __future__ import annotations

import socket
import time
import uuid
from pathlib import Path

import pytest

from provider.backends.vault.backend import VaultBackend
from provider.backends.vault.config import Connection
from provider.backends.vault.transport import build_session
from provider.errors import ErrorKind, ProviderError
from provider.localdriver import PodIdentity
from tests.integration.vault.conftest import MountFn, make_backend
from tests.support.leases import LEASED_PKI_ROLE, NAMESPACE, configure_leases
from tests.support.openbao import Cluster

CERT = f"""
- objectName: tls.crt
  secretPath: pki/issue/{LEASED_PKI_ROLE}
  method: PUT
  secretArgs: {{common_name: outage.example.com}}
  secretKey: certificate
"""
KV = "- {objectName: kv, secretPath: secret/data/kv1, secretKey: bar1}"


def closed_address() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


class DownSessions:
    """Every connection leads to a closed port: Vault is down."""

    def __init__(self, address: str) -> None:
        self.adapter = build_session(Connection(address))

    def get(self, connection: object) -> object:
        return self.adapter


def test_leased_credentials_are_kept_through_an_outage_while_valid(cluster: Cluster, tmp_path: Path,
                                                                   mount: MountFn) -> None:
    configure_leases(cluster.bao, None, {}, {"lease-role": ("lease-sa", "1h")})
    backend: VaultBackend = make_backend(cluster, tmp_path)
    pod = PodIdentity(f"app-{uuid.uuid4().hex[:6]}", NAMESPACE, str(uuid.uuid4()), "lease-sa")
    settings = {"roleName": "lease-role", "vaultAuthMountPath": "jwt"}
    first = mount(backend, CERT, pod, **settings)
    (lease,) = backend.reads.leases._entries.values()
    now = time.monotonic()  # past two thirds of its term: due for new credentials, yet valid for a while
    lease.term_start, lease.lease_end = now - lease.first_term, now + 0.4 * lease.first_term
    backend.sessions = DownSessions(closed_address())  # type: ignore[assignment]
    again = mount(backend, CERT, pod, **settings)
    assert [f.contents for f in again] == [f.contents for f in first]
    with pytest.raises(ProviderError) as caught:
        mount(backend, KV, pod, **settings)
    assert caught.value.kind is ErrorKind.UNAVAILABLE
    lease.lease_end = time.monotonic() + 0.1  # past its last tenth: no longer handed out
    with pytest.raises(ProviderError) as caught:
        mount(backend, CERT, pod, **settings)
    assert caught.value.kind is ErrorKind.UNAVAILABLE
