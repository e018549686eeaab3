"""Operations through a running daemon: /healthz, /metrics and the audit trail, and that none of them
(nor the logs) ever carries a secret value or a token.

The daemon runs as the DaemonSet runs it (`serve`, JSON logs, health and metrics endpoints, an audit
log), bound to 127.0.0.1 on ports the kernel picks, with the test backend (tests/support/test_backend.py)
beside the real vault and azure sockets.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from provider.audit import AuditLog
from provider.backends import declarations
from provider.errors import ErrorKind
from provider.localdriver import PodIdentity, build_mount_request, call_mount
from tests.support.daemon import Daemon, start_daemon

ROOT = Path(__file__).resolve().parents[2]
BACKENDS = ["test", "vault", "azure"]
POD = PodIdentity.named("checkout-7d9f", "shop", "checkout")

# Planted markers: each must never appear in a log line, an audit record, the metrics or an error.
VALUE_MARKER = "planted-value-" + secrets.token_hex(8)
NODE_SECRET_MARKER = "planted-clientsecret-" + secrets.token_hex(8)


def _jwt_marker() -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    signature = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    return f"{part({'alg': 'RS256', 'kid': 'k'})}.{part({'sub': 'system:serviceaccount:shop:checkout'})}.{signature}"


TOKEN_MARKER = _jwt_marker()
VAULT_TOKEN_MARKER = "hvs." + secrets.token_urlsafe(24)
MARKERS = (VALUE_MARKER, NODE_SECRET_MARKER, TOKEN_MARKER, VAULT_TOKEN_MARKER)


def spc(object_list: list[dict[str, Any]] | None, name: str = "checkout-secrets", **parameters: str) -> dict[str, Any]:
    params = dict(parameters)
    if object_list is not None:
        params["objects"] = yaml.safe_dump(object_list)
    spec = {"provider": "test", "parameters": params}
    return {"kind": "SecretProviderClass", "metadata": {"name": name}, "spec": spec}


TWO = [
    {"objectName": "db-password", "value": VALUE_MARKER},
    {"objectName": "tls/cert.pem", "path": "tls/cert.pem", "value": "-----BEGIN CERTIFICATE-----"},
]


class Endpoints:
    """A running daemon with its HTTP endpoints and audit file."""

    def __init__(self, daemon: Daemon, audit_path: Path | None) -> None:
        self.daemon = daemon
        self.audit_path = audit_path
        self.health_port = self._port("health endpoint listening")
        self.metrics_port = self._port("metrics endpoint listening")

    def _port(self, message: str) -> int:
        end = time.monotonic() + 10
        while time.monotonic() < end:
            for record in log_records(self.daemon):
                if record.get("message") == message:
                    return int(record["port"])
            time.sleep(0.02)
        raise AssertionError(f"the daemon never logged {message!r}:\n{self.daemon.logs()}")

    def get(self, port: int, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def healthz(self) -> tuple[int, dict[str, Any]]:
        status, body = self.get(self.health_port, "/healthz")
        return status, json.loads(body)

    def metrics(self) -> str:
        status, body = self.get(self.metrics_port, "/metrics")
        assert status == 200
        return body

    def audit(self) -> list[dict[str, Any]]:
        text = self.audit_path.read_text() if self.audit_path else self.daemon.stdout()
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def mount(self, spc_doc: dict[str, Any], **kwargs: Any) -> Any:
        request = build_mount_request(spc_doc, kwargs.pop("pod", POD), **kwargs)
        return call_mount(self.daemon.socket_path("test"), request, timeout=30)


def log_records(daemon: Daemon) -> list[dict[str, Any]]:
    return [json.loads(line) for line in daemon.logs().splitlines() if line.startswith("{")]


def serve_args(audit: str) -> list[str]:
    return [
        "--health-addr", "127.0.0.1:0",
        "--metrics-addr", "127.0.0.1:0",
        "--audit-log", audit,
        "--log-format", "json",
    ]


@pytest.fixture(scope="module")
def ops(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoints]:
    base = tmp_path_factory.mktemp("ops")
    audit_path = base / "audit.log"
    with start_daemon(base / "providers", BACKENDS, serve_args(str(audit_path)), log_level="debug") as daemon:
        yield Endpoints(daemon, audit_path)


def rpc_error(call: Callable[[], object]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Sample name → value for one metric family, keyed by its sorted labels."""
    found: dict[tuple[tuple[str, str], ...], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def value(text: str, name: str, **labels: str) -> float:
    return samples(text, name).get(tuple(sorted(labels.items())), 0.0)


# ---------------------------------------------------------------------------------------------- /healthz


def test_healthz_is_ok_while_every_socket_answers(ops: Endpoints) -> None:
    status, body = ops.healthz()
    assert status == 200
    assert body == {"status": "ok", "sockets": {name: True for name in BACKENDS}}


def test_healthz_only_serves_healthz(ops: Endpoints) -> None:
    assert ops.get(ops.health_port, "/")[0] == 404
    assert ops.get(ops.health_port, "/metrics")[0] == 404


def test_healthz_fails_when_a_socket_stops_answering(tmp_path: Path) -> None:
    with start_daemon(tmp_path / "providers", BACKENDS, serve_args(str(tmp_path / "audit.log"))) as daemon:
        endpoints = Endpoints(daemon, tmp_path / "audit.log")
        assert endpoints.healthz()[0] == 200
        # The driver finds providers by socket path: a socket removed from the directory (a host path
        # recreated under the pod, say) is a provider the driver can no longer reach.
        os.unlink(daemon.socket_path("azure"))
        status, body = endpoints.healthz()
        assert status == 503
        assert body == {"status": "unhealthy", "sockets": {"test": True, "vault": True, "azure": False}}
        assert daemon.stop() == 0


# ---------------------------------------------------------------------------------------------- /metrics


def test_mount_metrics_count_by_backend_and_error_kind(ops: Endpoints) -> None:
    before = ops.metrics()
    ops.mount(spc(TWO))
    ops.mount(spc(TWO))
    rpc_error(lambda: ops.mount(spc(None, failWith="NOT_FOUND")))
    rpc_error(lambda: ops.mount(spc(None, objects="- objectName: [unclosed")))
    after = ops.metrics()

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("provider_mounts_total", backend="test", error_kind="") == 2
    assert delta("provider_mounts_total", backend="test", error_kind="NotFound") == 1
    assert delta("provider_mounts_total", backend="test", error_kind="InvalidArgument") == 1
    assert delta("provider_mount_duration_seconds_count", backend="test", error_kind="") == 2
    assert delta("provider_mount_duration_seconds_count", backend="test", error_kind="NotFound") == 1
    assert delta("provider_mount_duration_seconds_sum", backend="test", error_kind="") > 0
    assert value(after, "provider_mounts_in_flight", backend="test") == 0


def test_in_flight_gauge_counts_a_mount_while_it_runs(ops: Endpoints) -> None:
    worker = threading.Thread(target=lambda: ops.mount(spc(TWO, delaySeconds="1.0")))
    worker.start()
    seen: list[float] = []
    end = time.monotonic() + 5
    while time.monotonic() < end and not any(seen):
        seen.append(value(ops.metrics(), "provider_mounts_in_flight", backend="test"))
        time.sleep(0.05)
    worker.join(10)
    assert max(seen) == 1
    assert value(ops.metrics(), "provider_mounts_in_flight", backend="test") == 0


def test_slow_mount_lands_in_the_right_duration_bucket(ops: Endpoints) -> None:
    before = ops.metrics()
    ops.mount(spc(TWO, delaySeconds="0.3"))
    after = ops.metrics()

    def delta(le: str) -> float:
        name = "provider_mount_duration_seconds_bucket"
        return value(after, name, backend="test", error_kind="", le=le) - value(
            before, name, backend="test", error_kind="", le=le
        )

    assert delta("0.25") == 0
    assert delta("0.5") == 1


def _documented_metrics() -> set[str]:
    text = (ROOT / "docs" / "metrics.md").read_text()
    return set(re.findall(r"^\| `(provider_[a-z_]+)`", text, flags=re.MULTILINE))


def test_every_provider_metric_is_exposed_and_documented(ops: Endpoints) -> None:
    ops.mount(spc(TWO))
    # The parser names a counter family without its _total suffix; the documentation uses the exposed name.
    # The client's `<name>_created` series (start times) come as families of their own: not ours to list.
    exposed = {
        f"{family.name}_total" if family.type == "counter" else family.name
        for family in text_string_to_metric_families(ops.metrics())
        if family.name.startswith("provider_") and not family.name.endswith("_created")
    }
    assert exposed == _documented_metrics()


ALLOWED_LABELS: dict[str, set[str] | re.Pattern[str]] = {
    "backend": set(BACKENDS),
    "error_kind": {""} | {kind.value for kind in ErrorKind},
    "identity_mode": {""} | {mode for declaration in declarations() for mode in declaration.identity_modes},
    "status_class": {"1xx", "2xx", "3xx", "4xx", "5xx", "error"},
    "operation": {"login", "read", "token", "get_secret", "get_key", "get_certificate", "list_versions"},
    "cache": {"token", "credential"},
    "result": {"hit", "miss", "expired"},
    "le": re.compile(r"^([0-9.]+|\+Inf)$"),
}


def test_metric_labels_come_from_fixed_sets(ops: Endpoints) -> None:
    ops.mount(spc([{"objectName": "unique-object-" + secrets.token_hex(4), "value": "v"}], name="unique-spc-x1"))
    text = ops.metrics()
    for family in text_string_to_metric_families(text):
        if not family.name.startswith("provider_"):
            continue
        for sample in family.samples:
            for label, label_value in sample.labels.items():
                assert label in ALLOWED_LABELS, f"{sample.name} has unexpected label {label}"
                allowed = ALLOWED_LABELS[label]
                ok = allowed.match(label_value) if isinstance(allowed, re.Pattern) else label_value in allowed
                assert ok, f"{sample.name}{{{label}={label_value!r}}} is not from the fixed set"
    for private in ("unique-object-", "unique-spc-x1", POD.name, POD.namespace, POD.uid):
        assert private not in text


# -------------------------------------------------------------------------------------------- audit trail


def _new_records(ops: Endpoints, before: int) -> list[dict[str, Any]]:
    # The record is written before the answer is sent; allow for the file write to become visible.
    end = time.monotonic() + 5
    while time.monotonic() < end:
        records = ops.audit()[before:]
        if records:
            return records
        time.sleep(0.02)
    return []


AUDIT_FIELDS = {
    "time", "backend", "pod", "serviceAccount", "identityMode", "secretProviderClass", "objects", "outcome",
    "errorKind", "durationSeconds",
}


def test_audit_record_of_a_successful_mount(ops: Endpoints) -> None:
    before = len(ops.audit())
    started = datetime.now(UTC)
    answer = ops.mount(spc(TWO))
    (record,) = _new_records(ops, before)
    assert set(record) == AUDIT_FIELDS
    when = datetime.strptime(record["time"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs((when - started).total_seconds()) < 5
    assert record["backend"] == "test"
    assert record["pod"] == {"namespace": POD.namespace, "name": POD.name, "uid": POD.uid}
    assert record["serviceAccount"] == POD.service_account
    assert record["secretProviderClass"] == "checkout-secrets"
    versions = {v.id: v.version for v in answer.object_version}
    assert record["objects"] == [
        {"id": "db-password", "version": versions["db-password"], "paths": ["db-password"]},
        {"id": "tls/cert.pem", "version": versions["tls/cert.pem"], "paths": ["tls/cert.pem"]},
    ]
    assert record["outcome"] == "ok"
    assert record["errorKind"] == ""
    assert isinstance(record["durationSeconds"], float) and 0 <= record["durationSeconds"] < 5


@pytest.mark.parametrize(
    ("parameters", "kind"),
    [
        ({"failWith": "PERMISSION_DENIED"}, "PermissionDenied"),
        ({"failWith": "UNAVAILABLE"}, "Unavailable"),
        ({"objects": "- objectName: ../escape\n  value: x"}, "InvalidArgument"),
    ],
)
def test_audit_record_of_a_failed_mount(ops: Endpoints, parameters: dict[str, str], kind: str) -> None:
    before = len(ops.audit())
    rpc_error(lambda: ops.mount(spc(None, **parameters)))
    (record,) = _new_records(ops, before)
    assert set(record) == AUDIT_FIELDS
    assert (record["outcome"], record["errorKind"], record["objects"]) == ("error", kind, [])
    assert record["pod"]["uid"] == POD.uid and record["secretProviderClass"] == "checkout-secrets"


def test_audit_record_when_the_request_cannot_be_parsed(ops: Endpoints) -> None:
    before = len(ops.audit())
    request = build_mount_request(spc(TWO), POD)
    request.attributes = "{not json " + VALUE_MARKER
    rpc_error(lambda: call_mount(ops.daemon.socket_path("test"), request, timeout=10))
    (record,) = _new_records(ops, before)
    assert (record["outcome"], record["errorKind"]) == ("error", "InvalidArgument")
    assert record["pod"] == {"namespace": "", "name": "", "uid": ""}


def test_one_audit_record_per_mount_under_concurrency(ops: Endpoints) -> None:
    before = len(ops.audit())
    pods = [PodIdentity.named(f"worker-{i}", "batch", "worker") for i in range(8)]
    threads = [threading.Thread(target=ops.mount, args=(spc(TWO),), kwargs={"pod": p}) for p in pods]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    end = time.monotonic() + 5
    while len(ops.audit()) - before < len(pods) and time.monotonic() < end:
        time.sleep(0.02)
    records = ops.audit()[before:]
    assert sorted(r["pod"]["uid"] for r in records) == sorted(p.uid for p in pods)


def test_audit_to_stdout_keeps_logs_on_stderr(tmp_path: Path) -> None:
    with start_daemon(tmp_path / "providers", ["test"], serve_args("-")) as daemon:
        endpoints = Endpoints(daemon, None)
        endpoints.mount(spc(TWO))
        assert daemon.stop() == 0
    (record,) = endpoints.audit()  # stdout holds audit records and nothing else
    assert record["outcome"] == "ok" and record["pod"]["name"] == POD.name
    assert any(r.get("message") == "mount answered" for r in log_records(daemon))


def test_audit_file_is_size_rotated(tmp_path: Path) -> None:
    target = tmp_path / "audit.log"
    audit = AuditLog(str(target), max_bytes=2000, backups=2)
    entry = {"backend": "test", "objects": [{"id": "x" * 100, "version": "v", "paths": ["x"]}], "outcome": "ok"}
    for _ in range(100):
        audit.record(entry)
    audit.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["audit.log", "audit.log.1", "audit.log.2"]
    for path in tmp_path.iterdir():
        assert path.stat().st_size <= 2000
        assert all(json.loads(line) == entry for line in path.read_text().splitlines())


# ----------------------------------------------------------------------------------- nothing leaks anywhere


def test_planted_secrets_never_leave_the_response(ops: Endpoints) -> None:
    tokens = {"test-aud": TOKEN_MARKER, "vault": VAULT_TOKEN_MARKER}
    secrets_map = {"clientsecret": NODE_SECRET_MARKER}
    answer = ops.mount(spc(TWO, requireAudience="test-aud", echoSecret="clientsecret"), tokens=tokens,
                       secrets=secrets_map)
    contents = {f.path: f.contents for f in answer.files}
    assert contents["db-password"] == VALUE_MARKER.encode()  # the value really went through the daemon
    assert contents["secret-value"] == NODE_SECRET_MARKER.encode()
    errors = [
        rpc_error(lambda: ops.mount(spc(TWO, failWith="UNAUTHENTICATED"), tokens=tokens, secrets=secrets_map)),
        rpc_error(lambda: ops.mount(spc(TWO, requireAudience="missing"), tokens=tokens, secrets=secrets_map)),
        rpc_error(lambda: ops.mount(spc([{"value": VALUE_MARKER}]), tokens=tokens)),  # INTERNAL: no objectName
    ]
    outputs = {
        "logs (debug)": ops.daemon.logs(),
        "audit": ops.audit_path.read_text() if ops.audit_path else "",
        "metrics": ops.metrics(),
        "gRPC errors": " ".join(e.details() or "" for e in errors),
    }
    assert "--log-level debug" in " ".join(map(str, ops.daemon.process.args)), "the daemon must run at debug"
    for where, text in outputs.items():
        for marker in MARKERS:
            assert marker not in text, f"a planted secret reached the {where}"


def test_log_lines_are_json_with_the_documented_fields(ops: Endpoints) -> None:
    ops.mount(spc(TWO))
    lines = [line for line in ops.daemon.logs().splitlines() if line.strip()]
    assert lines
    for line in lines:
        record = json.loads(line)
        assert {"time", "level", "message"} <= set(record), line
        assert record["level"] in {"debug", "info", "warning", "error", "critical"}
        assert logging.getLevelName(record["level"].upper()) != f"Level {record['level'].upper()}"


def test_backend_request_and_cache_metrics_from_the_vault_backend(ops: Endpoints) -> None:
    """A real backend's requests are counted by operation and status class: here a login to a closed port."""
    vault_spc = {
        "kind": "SecretProviderClass",
        "metadata": {"name": "vault-unreachable"},
        "spec": {"provider": "vault", "parameters": {
            "vaultAddress": "http://127.0.0.1:1",
            "roleName": "app",
            "objects": "- objectName: db-password\n  secretPath: secret/data/db\n  secretKey: password\n",
        }},
    }
    before = ops.metrics()
    request = build_mount_request(vault_spc, POD, tokens={"vault": TOKEN_MARKER})
    error = rpc_error(lambda: call_mount(ops.daemon.socket_path("vault"), request, timeout=5))
    assert error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    assert TOKEN_MARKER not in (error.details() or "")
    after = ops.metrics()

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("provider_backend_requests_total", backend="vault", operation="login", status_class="error") >= 1
    assert delta("provider_backend_request_duration_seconds_count", backend="vault", operation="login") >= 1
    assert delta("provider_cache_lookups_total", backend="vault", cache="token", result="miss") == 1
    assert delta("provider_mounts_total", backend="vault", error_kind=error.code().name.title().replace("_", "")) == 1
    assert "127.0.0.1:1" not in after  # addresses are not labels


def test_a_failed_remount_is_counted_apart_from_a_failed_first_mount(ops: Endpoints) -> None:
    """A volume mounted once keeps its files when a later Mount (a rotation poll) fails: that is counted."""
    pod = PodIdentity.named("rotating-1", "shop", "checkout")
    first_time = PodIdentity.named("never-mounted-1", "shop", "checkout")
    before = ops.metrics()
    ops.mount(spc(TWO), pod=pod)
    rpc_error(lambda: ops.mount(spc(TWO, failWith="NOT_FOUND"), pod=pod))
    rpc_error(lambda: ops.mount(spc(TWO, failWith="NOT_FOUND"), pod=pod))
    rpc_error(lambda: ops.mount(spc(TWO, failWith="NOT_FOUND"), pod=first_time))
    ops.mount(spc(TWO), pod=pod)  # mounted again: no longer stale, and nothing more is counted
    after = ops.metrics()

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("provider_mounts_total", backend="test", error_kind="NotFound") == 3
    assert delta("provider_remount_failures_total", backend="test", error_kind="NotFound") == 2


def test_audit_write_failures_are_counted_and_the_mount_still_answered(tmp_path: Path) -> None:
    # /dev/full takes the open and refuses every write with ENOSPC: a full disk under the audit file.
    with start_daemon(tmp_path / "providers", ["test"], serve_args("/dev/full")) as daemon:
        endpoints = Endpoints(daemon, None)
        answer = endpoints.mount(spc(TWO))
        assert {f.path for f in answer.files} == {"db-password", "tls/cert.pem"}
        endpoints.mount(spc(TWO))
        text = endpoints.metrics()
        assert daemon.stop() == 0
    assert value(text, "provider_audit_write_failures_total") == 2
    failures = [r for r in log_records(daemon) if r.get("message") == "audit record could not be written"]
    assert len(failures) == 2 and failures[0]["level"] == "error"
    assert "No space left on device" in failures[0]["error"]
    assert "Logging error" not in daemon.logs()  # not the logging module's traceback, which repeats the record
