"""Load with mixed identities through the socket: each caller gets only its own values, denied callers get
nothing, and the daemon holds no more threads or file descriptors afterwards than after a warm-up."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import grpc
import yaml

from provider.localdriver import PodIdentity, build_mount_request, call_mount
from tests.support.daemon import Daemon


def process_counts(pid: int) -> tuple[int, int]:
    with open(f"/proc/{pid}/status") as status:
        threads = next(int(line.split()[1]) for line in status if line.startswith("Threads:"))
    return threads, len(os.listdir(f"/proc/{pid}/fd"))


def one_mount(daemon: Daemon, i: int) -> tuple[int, str]:
    pod = PodIdentity.named(f"pod-{i}", f"tenant-{i % 7}", f"sa-{i % 13}")
    parameters = {"objects": yaml.safe_dump([{"objectName": "value", "value": f"{pod.namespace}:{pod.uid}"}]),
                  "echoPod": "true"}
    if i % 5 == 0:
        parameters["failWith"] = "PERMISSION_DENIED"
    spc = {"kind": "SecretProviderClass", "metadata": {"name": "load"},
           "spec": {"provider": "test", "parameters": parameters}}
    try:
        answer = call_mount(daemon.socket_path("test"), build_mount_request(spc, pod), timeout=60)
    except grpc.RpcError as exc:
        assert i % 5 == 0 and exc.code() is grpc.StatusCode.PERMISSION_DENIED
        return i, "denied"
    assert i % 5 != 0, "a denied caller got files"
    files = {f.path: f.contents.decode() for f in answer.files}
    assert files["value"] == f"{pod.namespace}:{pod.uid}"
    assert files["pod-info"] == f"{pod.namespace}/{pod.name}/{pod.uid}/{pod.service_account}"
    return i, "ok"


def test_200_concurrent_mixed_mounts(daemon_factory: Callable[..., Daemon]) -> None:
    # 50 callers against 8 workers: the warm-up fills the RPC pool to its bound, so any later growth is a leak.
    daemon = daemon_factory(["test"], ["--max-concurrent-mounts", "8"], log_level="warning")
    idle = process_counts(daemon.process.pid)
    with ThreadPoolExecutor(50) as pool:
        list(pool.map(lambda i: one_mount(daemon, i), range(200)))
    warm = process_counts(daemon.process.pid)
    with ThreadPoolExecutor(50) as pool:
        outcomes = dict(pool.map(lambda i: one_mount(daemon, i), range(200)))
    after = process_counts(daemon.process.pid)
    assert sum(1 for o in outcomes.values() if o == "denied") == 40
    assert sum(1 for o in outcomes.values() if o == "ok") == 160
    assert warm[0] <= idle[0] + 8 + 2, f"threads grew past the pool bound: {idle[0]} idle, {warm[0]} after"
    assert after[0] <= warm[0] + 2, f"threads grew from {warm[0]} to {after[0]}"
    assert after[1] <= warm[1] + 4, f"file descriptors grew from {warm[1]} to {after[1]}"
