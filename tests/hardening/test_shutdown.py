"""SIGTERM while Vault mounts are in flight: mounts that can finish within --grace-seconds do; mounts stuck
on a Vault that never answers end with a clean gRPC error when the grace period is over (not at their own
deadline); no new mount is taken; the daemon exits 0 soon after, with its sockets removed."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from tests.hardening.conftest import Outcome, new_pod, vault_mount
from tests.hardening.faultproxy import FaultProxy
from tests.support.daemon import start_daemon
from tests.support.openbao import KV2, Cluster, daemon_env

OBJECTS = "- {objectName: secret-1, secretPath: secret/data/kv1, secretKey: bar1}"
GRACE = 3.0


@pytest.fixture
def slow_and_stuck(cluster: Cluster) -> Iterator[tuple[FaultProxy, FaultProxy]]:
    """Two proxies in front of OpenBao: one answers a second late, the other never answers."""
    slow, stuck = FaultProxy(cluster.bao.address), FaultProxy(cluster.bao.address)
    slow.inject("delay", delay=1.0)
    stuck.inject("silent")
    yield slow, stuck
    slow.stop()
    stuck.stop()


def test_sigterm_with_vault_mounts_in_flight(cluster: Cluster, tmp_path: Path,
                                             slow_and_stuck: tuple[FaultProxy, FaultProxy]) -> None:
    slow, stuck = slow_and_stuck
    daemon = start_daemon(tmp_path / "providers", ["vault"],
                          ["--vault-addr", cluster.bao.address, "--grace-seconds", str(GRACE)],
                          env=daemon_env(cluster, tmp_path))
    daemon.wait_ready()
    outcomes: dict[str, Outcome] = {}

    def mount(name: str, address: str) -> None:
        outcomes[name] = vault_mount(daemon, cluster, new_pod(), OBJECTS, timeout=60, roleName="kv-role",
                                     vaultAddress=address)

    workers = [threading.Thread(target=mount, args=(f"slow-{i}", slow.address)) for i in range(3)]
    workers += [threading.Thread(target=mount, args=(f"stuck-{i}", stuck.address)) for i in range(2)]
    for worker in workers:
        worker.start()
    end = time.monotonic() + 10
    while len(slow.requests()) + len(stuck.requests()) < 5 and time.monotonic() < end:
        time.sleep(0.02)  # every mount has reached its Vault
    assert len(slow.requests()) + len(stuck.requests()) >= 5
    signalled = time.monotonic()
    daemon.process.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    late = vault_mount(daemon, cluster, new_pod(), OBJECTS, timeout=5, roleName="kv-role")
    for worker in workers:
        worker.join(GRACE + 10)
    exit_code = daemon.stop(timeout=GRACE + 10)
    exited = time.monotonic() - signalled
    for i in range(3):
        assert outcomes[f"slow-{i}"].files == {"secret-1": KV2["kv1"]["bar1"].encode()}, outcomes[f"slow-{i}"]
    for i in range(2):
        stuck_outcome = outcomes[f"stuck-{i}"]
        assert stuck_outcome.files is None and stuck_outcome.code in (grpc.StatusCode.CANCELLED,
                                                                       grpc.StatusCode.UNAVAILABLE), stuck_outcome
        assert stuck_outcome.seconds < GRACE + 3, "a stuck mount outlived the grace period"
    assert late.files is None and late.code is grpc.StatusCode.UNAVAILABLE, late
    assert exit_code == 0
    assert exited < GRACE + 5, f"the daemon took {exited:.1f}s to exit after SIGTERM"
    assert os.listdir(tmp_path / "providers") == []
