"""One hostile SPC must not exhaust the daemon that serves every pod of its node (DaemonSet limit 160 Mi; an OOM
kill fails every mount on the node). For each vector — alias bombs in `objects`, `secretArgs` and `templates`,
many large distinct `objects` texts, chained template filters, a huge `objectName`, twenty thousand objects —
the real daemon, run as its own process under an address-space guard, answers through its socket within
2 s with a clear error (code and a message naming the cause), its peak RSS (VmHWM) stays under 100 MB, and
it still serves a good mount afterwards. Both backends: Vault against the real OpenBao, Azure against the
local fake through the real SDKs.

The guard (RLIMIT_AS, set on the running daemon) only keeps a regression from taking the machine down: gRPC
and glibc reserve far more address space than they use, so the budget itself is asserted on RSS.
"""

from __future__ import annotations

import os
import re
import resource
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from tests.hardening.conftest import new_pod, vault_mount
from tests.support.azure_fake.daemon import SandboxedDaemon
from tests.support.azure_fake.fixtures import Mounts, azure_world, files_of, start_sandboxed  # noqa: F401 - fixtures
from tests.support.azure_fake.world import World
from tests.support.daemon import Daemon, start_daemon
from tests.support.openbao import Cluster, daemon_env

MB = 1024 * 1024
PEAK_RSS_KIB = 100 * 1024
ANSWER_SECONDS = 2.0
GUARD_BYTES = 1024 * MB  # address space allowed beyond what the warmed-up daemon has reserved


def bomb(indent: str = "") -> str:
    """Nine levels of nine aliases: 468 bytes that describe 387 million nodes."""
    lines = [f"{indent}l0: &l0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"{indent}l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 9)]
    return "\n".join(lines) + "\n"


def chained_filters(source: str) -> str:
    return f"- fileName: bomb\n  template: '{{{{ {source}" + " | base64" * 60 + " }}'\n"


# ------------------------------------------------------------------------------------------ the daemon's process


def serve_process(root: int) -> int:
    """The pid of the `serve` process: root itself, or (in the Azure sandbox) one of its descendants."""
    pending = [root]
    while pending:
        pid = pending.pop()
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
        if b"tests.support.serve" in command and b"tests.support.azure_fake.sandbox" not in command:
            return pid
        for task in Path(f"/proc/{pid}/task").iterdir():
            pending += [int(child) for child in (task / "children").read_text().split()]
    raise AssertionError(f"no serve process under pid {root}")


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"{field} not in /proc/{pid}/status")


def guard(pid: int) -> None:
    limit = status_kib(pid, "VmSize") * 1024 + GUARD_BYTES
    resource.prlimit(pid, resource.RLIMIT_AS, (limit, limit))


@dataclass(frozen=True)
class Answer:
    code: grpc.StatusCode | None
    details: str
    seconds: float


def assert_clear_refusal(answer: Answer, code: grpc.StatusCode, cause: str, pid: int) -> None:
    assert answer.code is code, (answer.code, answer.details[:500])
    assert re.search(cause, answer.details), answer.details[:500]
    assert len(answer.details) <= 4096
    assert answer.seconds < ANSWER_SECONDS, f"answered after {answer.seconds:.2f} s"
    peak = status_kib(pid, "VmHWM")
    assert peak < PEAK_RSS_KIB, f"the daemon's peak RSS reached {peak // 1024} MB"


# ------------------------------------------------------------------------------------------------------ Vault

GOOD_PATH = f"budget-{uuid.uuid4().hex[:6]}"
GOOD = f"- {{objectName: good, secretPath: secret/data/{GOOD_PATH}, secretKey: password}}\n"


@dataclass
class VaultDaemon:
    daemon: Daemon
    cluster: Cluster
    pid: int

    def mount(self, objects: str, **parameters: str) -> Answer:
        outcome = vault_mount(self.daemon, self.cluster, new_pod(), objects, roleName="kv-role", **parameters)
        return Answer(outcome.code, outcome.details, outcome.seconds)

    def good_mount(self) -> None:
        outcome = vault_mount(self.daemon, self.cluster, new_pod(), GOOD, roleName="kv-role")
        assert outcome.files == {"good": b"s3cret"}, outcome.details


@pytest.fixture(scope="module")
def vault(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[VaultDaemon]:
    directory = tmp_path_factory.mktemp("budget-vault")
    cluster.bao.api("POST", f"secret/data/{GOOD_PATH}", {"data": {"password": "s3cret"}})
    with start_daemon(directory / "providers", ["vault"], ["--vault-addr", cluster.bao.address],
                      env=daemon_env(cluster, directory), log_level="info") as daemon:
        running = VaultDaemon(daemon, cluster, serve_process(daemon.process.pid))
        running.good_mount()  # the working set of a daemon that has served mounts: hvac, a session, a token
        guard(running.pid)
        yield running


def vault_objects(count: int, path: str = "secret/data/x") -> str:
    return "".join(f"- objectName: o{i}\n  secretPath: {path}\n  secretKey: password\n" for i in range(count))


VAULT_VECTORS: dict[str, tuple[Callable[[], tuple[str, dict[str, str]]], grpc.StatusCode, str]] = {
    "alias bomb in objects": (lambda: (bomb(), {}), grpc.StatusCode.INVALID_ARGUMENT,
                              r"'objects' is not valid YAML: the document contains excessive aliasing"),
    "alias bomb in secretArgs": (
        lambda: ("- objectName: a\n  secretPath: pki/issue/r\n  method: POST\n  secretArgs:\n" + bomb("    "), {}),
        grpc.StatusCode.INVALID_ARGUMENT, r"'objects' is not valid YAML: the document contains excessive aliasing"),
    "alias bomb in templates": (lambda: (GOOD, {"templates": bomb()}), grpc.StatusCode.INVALID_ARGUMENT,
                                r"^templates is not valid YAML: the document contains excessive aliasing"),
    "chained filters": (lambda: (GOOD, {"templates": chained_filters("good")}), grpc.StatusCode.RESOURCE_EXHAUSTED,
                        r"^template 'bomb' grows past the driver's 4194304-byte limit for a whole mount at "
                        r"'good \| base64'"),
    "1 MB objectName": (lambda: (f"- {{objectName: {'n' * MB}, secretPath: secret/data/x}}\n", {}),
                        grpc.StatusCode.INVALID_ARGUMENT,
                        r"^parameter 'objects' is \d+ characters long, over the provider's limit of 262144"),
    "200 KiB objectName": (lambda: (f"- {{objectName: {'n' * 200 * 1024}, secretPath: secret/data/x}}\n", {}),
                           grpc.StatusCode.INVALID_ARGUMENT,
                           r"^object 'n{200}'… \(204800 characters, truncated\): objectName is longer than 4096"),
    "20,000 objects": (lambda: (vault_objects(20_000, "secret/data/a-longer-path-to-make-it-1.5MB"), {}),
                       grpc.StatusCode.INVALID_ARGUMENT,
                       r"^parameter 'objects' is 1\d{6} characters long, over the provider's limit of 262144"),
    "5,000 objects within the size cap": (
        lambda: ("".join(f"- {{objectName: o{i}, secretPath: s}}\n" for i in range(5000)), {}),
        grpc.StatusCode.INVALID_ARGUMENT,
        r"'objects' lists 5000 objects, over the provider's limit of 1000 objects per SecretProviderClass"),
}


@pytest.mark.parametrize("vector", list(VAULT_VECTORS))
def test_vault_vector(vault: VaultDaemon, vector: str) -> None:
    build, code, cause = VAULT_VECTORS[vector]
    objects, parameters = build()
    assert_clear_refusal(vault.mount(objects, **parameters), code, cause, vault.pid)


def test_vault_many_large_distinct_objects_texts(vault: VaultDaemon) -> None:
    """Each text just under the caps, different each time, failing after it was parsed: nothing of them stays."""
    for round_ in range(12):
        text = vault_objects(999, f"secret/data/{'p' * 150}{round_}") + "- {objectName: o0, secretPath: s}\n"
        assert_clear_refusal(vault.mount(text), grpc.StatusCode.INVALID_ARGUMENT,
                             r"the following keys were duplicated: o0$", vault.pid)


def test_vault_still_serves_a_good_mount(vault: VaultDaemon) -> None:
    vault.good_mount()
    assert status_kib(vault.pid, "VmHWM") < PEAK_RSS_KIB


# ------------------------------------------------------------------------------------------------------ Azure


@dataclass
class AzureDaemon:
    mounts: Mounts
    vault: str
    pid: int

    def mount(self, objects: str, **parameters: str) -> Answer:
        request = self.mounts.request(self.mounts.world.workload(self.vault, objects=objects, **parameters))
        started = time.monotonic()
        try:
            self.mounts.call(request, timeout=10)
        except grpc.RpcError as exc:
            return Answer(exc.code(), exc.details() or "", time.monotonic() - started)
        return Answer(None, "", time.monotonic() - started)

    def good_mount(self) -> None:
        answer = self.mounts.mount(self.mounts.world.workload(self.vault, objects=AZURE_GOOD))
        assert files_of(answer) == {"good": b"s3cret"}


AZURE_GOOD = "array:\n  - |\n    objectName: good\n    objectType: secret\n"


@pytest.fixture(scope="module")
def azure(azure_world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzureDaemon]:  # noqa: F811
    name = f"kv-budget-{uuid.uuid4().hex[:6]}"
    azure_world.vault(name).set_secret("good", "s3cret")
    daemon: SandboxedDaemon = start_sandboxed(azure_world, tmp_path_factory.mktemp("budget-azure"),
                                              ["--log-level", "info"])
    try:
        running = AzureDaemon(Mounts(azure_world, daemon), name, serve_process(daemon.process.pid))
        running.good_mount()  # the Azure SDKs load at the first fetch: part of a working daemon
        guard(running.pid)
        yield running
    finally:
        daemon.stop()


def azure_objects(count: int, name: str = "o") -> str:
    return "array:\n" + "".join(f"  - |\n    objectName: {name}{i}\n    objectType: secret\n" for i in range(count))


AZURE_VECTORS: dict[str, tuple[Callable[[], tuple[str, dict[str, str]]], grpc.StatusCode, str]] = {
    "alias bomb in objects": (lambda: (bomb(), {}), grpc.StatusCode.INVALID_ARGUMENT,
                              r"^objects is not valid YAML \(the document contains excessive aliasing"),
    "alias bomb in an object": (lambda: ("array:\n  - |\n" + bomb("    "), {}), grpc.StatusCode.INVALID_ARGUMENT,
                                r"^object 0 in objects is not valid YAML \(the document contains excessive aliasing"),
    "alias bomb in templates": (lambda: (AZURE_GOOD, {"templates": bomb()}), grpc.StatusCode.INVALID_ARGUMENT,
                                r"^templates is not valid YAML: the document contains excessive aliasing"),
    "chained filters": (lambda: (AZURE_GOOD, {"templates": chained_filters("good")}),
                        grpc.StatusCode.RESOURCE_EXHAUSTED,
                        r"^template 'bomb' grows past the driver's 4194304-byte limit for a whole mount"),
    "1 MB objectName": (lambda: (f"array:\n  - |\n    objectName: {'n' * MB}\n", {}),
                        grpc.StatusCode.INVALID_ARGUMENT,
                        r"^parameter 'objects' is \d+ characters long, over the provider's limit of 262144"),
    "200 KiB objectName": (lambda: (f"array:\n  - |\n    objectName: {'n' * 200 * 1024}\n    objectType: secret\n",
                                    {}),
                           grpc.StatusCode.INVALID_ARGUMENT,
                           r"^object 0 \(secret 'n{200}'… \(204800 characters, truncated\)\): file name 'n{200}'… "
                           r"\(204800 characters, truncated\) is longer than 4096 bytes$"),
    "20,000 objects": (lambda: (azure_objects(20_000, "a-longer-object-name-to-make-it-1-5-MB-"), {}),
                       grpc.StatusCode.INVALID_ARGUMENT,
                       r"^parameter 'objects' is 1\d{6} characters long, over the provider's limit of 262144"),
    "5,000 objects within the size cap": (lambda: (azure_objects(5000), {}), grpc.StatusCode.INVALID_ARGUMENT,
                                          r"^objects 'array' lists 5000 objects, over the provider's limit of 1000"),
}


@pytest.mark.parametrize("vector", list(AZURE_VECTORS))
def test_azure_vector(azure: AzureDaemon, vector: str) -> None:
    build, code, cause = AZURE_VECTORS[vector]
    objects, parameters = build()
    assert_clear_refusal(azure.mount(objects, **parameters), code, cause, azure.pid)


def test_azure_many_large_distinct_objects_texts(azure: AzureDaemon) -> None:
    for round_ in range(12):
        text = azure_objects(1000, f"{'p' * 100}{round_}-") + "  - |\n    objectName: bad!\n    objectType: secret\n"
        assert_clear_refusal(azure.mount(text), grpc.StatusCode.INVALID_ARGUMENT, r"lists 1001 objects", azure.pid)


def test_azure_still_serves_a_good_mount(azure: AzureDaemon) -> None:
    azure.good_mount()
    assert status_kib(azure.pid, "VmHWM") < PEAK_RSS_KIB


def test_the_guard_is_set(vault: VaultDaemon) -> None:
    soft, hard = resource.prlimit(vault.pid, resource.RLIMIT_AS)
    assert soft == hard and soft != resource.RLIM_INFINITY
    assert os.path.exists(f"/proc/{vault.pid}")


def test_requests_larger_than_any_driver_sends_are_refused_by_grpc(vault: VaultDaemon) -> None:
    outcome = vault_mount(vault.daemon, vault.cluster, new_pod(), GOOD, roleName="kv-role", padding="p" * 3 * MB)
    assert outcome.code is grpc.StatusCode.RESOURCE_EXHAUSTED, outcome.details
    assert status_kib(vault.pid, "VmHWM") < PEAK_RSS_KIB
    vault.good_mount()
