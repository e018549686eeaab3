"""Fixtures for the hardening tests: a Vault daemon as a DaemonSet runs it (debug logs, metrics, audit file)
and a fault-injecting proxy in front of the shared OpenBao (the OpenBao `cluster` is in tests/conftest.py)."""

from __future__ import annotations

import json
import os
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from provider.localdriver import PodIdentity, build_mount_request, call_mount, check_response
from tests.hardening.faultproxy import FaultProxy
from tests.support.daemon import Daemon, start_daemon
from tests.support.openbao import Cluster, daemon_env, vault_spc


def serve_flags(audit: Path) -> list[str]:
    return ["--metrics-addr", "127.0.0.1:0", "--audit-log", str(audit), "--log-format", "json"]


@dataclass
class Observed:
    """A running daemon and where its outputs go: stderr logs, stdout, audit file, /metrics."""

    daemon: Daemon
    audit_path: Path

    def metrics_port(self) -> int:
        end = time.monotonic() + 10
        while time.monotonic() < end:
            for line in self.daemon.logs().splitlines():
                if line.startswith("{") and json.loads(line).get("message") == "metrics endpoint listening":
                    return int(json.loads(line)["port"])
            time.sleep(0.02)
        raise AssertionError("the daemon never logged its metrics port")

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port()}/metrics", timeout=10) as answer:
            return str(answer.read().decode())

    def audit(self) -> str:
        return self.audit_path.read_text() if self.audit_path.exists() else ""


@pytest.fixture(scope="module")
def proxy(cluster: Cluster) -> Iterator[FaultProxy]:
    """The shared OpenBao behind a proxy that injects one fault at a time."""
    fronted = FaultProxy(cluster.bao.address)
    yield fronted
    fronted.stop()


@pytest.fixture(scope="module")
def vault_daemon(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Observed]:
    """The real daemon at --log-level debug, with /metrics and an audit file, serving vault.sock."""
    directory = tmp_path_factory.mktemp("hardening-vault")
    key = directory / "version.key"
    key.write_bytes(os.urandom(32))
    audit = directory / "audit.log"
    flags = ["--vault-addr", cluster.bao.address, "--version-key-file", str(key), *serve_flags(audit)]
    with start_daemon(directory / "providers", ["vault"], flags, env=daemon_env(cluster, directory),
                      log_level="debug") as running:
        yield Observed(running, audit)


def new_pod(service_account: str = "nginx-kv", namespace: str = "test") -> PodIdentity:
    return PodIdentity(f"pod-{uuid.uuid4().hex[:8]}", namespace, str(uuid.uuid4()), service_account)


@dataclass(frozen=True)
class Outcome:
    """What one mount gave: the files, or the gRPC code and message; and how long it took."""

    files: dict[str, bytes] | None
    code: grpc.StatusCode | None
    details: str
    seconds: float


def vault_mount(daemon: Daemon, cluster: Cluster, pod: PodIdentity, objects: str, timeout: float = 10.0,
                token: str | None = None, secrets: dict[str, str] | None = None, **parameters: str) -> Outcome:
    """One Mount through vault.sock, built as the driver builds it, with `timeout` as the driver's deadline."""
    jwt = token or cluster.pod_token(pod.namespace, pod.service_account, pod.name, pod.uid)
    request = build_mount_request(vault_spc(objects, **parameters), pod, tokens={"vault": jwt}, secrets=secrets)
    started = time.monotonic()
    try:
        response = call_mount(daemon.socket_path("vault"), request, timeout=timeout)
    except grpc.RpcError as exc:
        return Outcome(None, exc.code(), exc.details() or "", time.monotonic() - started)
    check_response(response)
    return Outcome({f.path: f.contents for f in response.files}, None, "", time.monotonic() - started)
