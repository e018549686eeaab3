"""The gRPC side: one server per backend on `<provider-dir>/<name>.sock`, the Mount pipeline, shutdown.

The server knows nothing of Vault or Azure. A Mount is one pass: request → backend.plan → backend.fetch
→ output. ProviderError is caught here and only here, and becomes the gRPC status; anything else is a
bug, logged with its traceback and answered INTERNAL without one. Every failure is sent with
`context.abort` (trailers-only), the only form the driver's gRPC client retries.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import time
from collections.abc import Mapping
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from provider import __version__
from provider._proto import v1alpha1_pb2 as pb
from provider._proto import v1alpha1_pb2_grpc as pb_grpc
from provider.backends import Backend
from provider.deadline import deadline_from
from provider.errors import ErrorKind, ProviderError
from provider.observability import (
    KNOWN_SECRETS,
    MOUNT_SECONDS,
    MOUNTS,
    MOUNTS_IN_FLIGHT,
    AuditLog,
    audit_objects,
    redact_text,
)
from provider.output import ObjectRecord, VersionKey, build_response
from provider.request import MountContext, parse_mount_request
from provider.templates import apply_templates, parse_templates

log = logging.getLogger(__name__)

API_VERSION = "v1alpha1"
RUNTIME_NAME = "secrets-store-csi-provider"
SERVICE_NAME = "v1alpha1.CSIDriverProvider"
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
# nodePublishSecretRef keys whose values identify rather than authenticate: kept readable in logs and errors.
PUBLIC_SECRET_KEYS = frozenset({"clientid", "client_id"})


class MountServicer(pb_grpc.CSIDriverProviderServicer):
    """Version and Mount for one backend."""

    def __init__(self, backend: Backend, version_key: VersionKey, audit: AuditLog) -> None:
        self.backend = backend
        self.version_key = version_key
        self.audit = audit

    def Version(self, request: pb.VersionRequest, context: grpc.ServicerContext) -> pb.VersionResponse:
        return pb.VersionResponse(version=API_VERSION, runtime_name=RUNTIME_NAME, runtime_version=__version__)

    def Mount(self, request: pb.MountRequest, context: grpc.ServicerContext) -> pb.MountResponse:
        started = time.monotonic()
        name = self.backend.name
        ctx: MountContext | None = None
        records: list[ObjectRecord] = []
        error: ProviderError | None = None
        MOUNTS_IN_FLIGHT.labels(name).inc()
        try:
            deadline = deadline_from(context.time_remaining())
            ctx = parse_mount_request(request.attributes, request.secrets, request.permission, request.target_path)
            KNOWN_SECRETS.add([*(v for k, v in ctx.secrets.items() if k.lower() not in PUBLIC_SECRET_KEYS),
                               *(t.token for t in ctx.tokens.values())])
            templates = parse_templates(ctx.parameters)
            plan = self.backend.plan(ctx)
            files = apply_templates(templates, self.backend.fetch(plan, deadline))
            response, records = build_response(files, ctx.default_mode, self.version_key)
        except ProviderError as exc:
            error = exc
        except Exception:
            log.exception("mount failed with an unexpected error", extra={"fields": {"backend": name}})
            error = ProviderError(
                ErrorKind.INTERNAL, f"internal error in the {name} provider; the provider log has the details"
            )
        finally:
            MOUNTS_IN_FLIGHT.labels(name).dec()
        elapsed = time.monotonic() - started
        kind = error.kind.value if error else ""
        MOUNTS.labels(name, kind).inc()
        MOUNT_SECONDS.labels(name, kind).observe(elapsed)
        self._report(ctx, records, error, elapsed)
        if error is not None:
            # abort, not set_code + return: only a status without headers or a message ("trailers-only")
            # leaves the call uncommitted, so the driver's retry policy can act on UNAVAILABLE.
            # The details are redacted: a backend's words may repeat a credential. abort raises.
            context.abort(error.status_code, redact_text(error.message))
        return response

    def _report(
        self, ctx: MountContext | None, records: list[ObjectRecord], error: ProviderError | None, elapsed: float
    ) -> None:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "backend": self.backend.name,
            "pod": {
                "namespace": ctx.pod.namespace if ctx else "",
                "name": ctx.pod.name if ctx else "",
                "uid": ctx.pod.uid if ctx else "",
            },
            "serviceAccount": ctx.pod.service_account if ctx else "",
            "secretProviderClass": ctx.spc_name if ctx else "",
            "objects": audit_objects(records),
            "outcome": "error" if error else "ok",
            "errorKind": error.kind.value if error else "",
            "durationSeconds": round(elapsed, 4),
        }
        self.audit.record(entry)
        fields = {k: entry[k] for k in ("backend", "pod", "secretProviderClass", "errorKind", "durationSeconds")}
        fields["objects"] = len(records)
        if error is None:
            log.info("mount answered", extra={"fields": fields})
        else:
            fields["error"] = error.message
            log.warning("mount failed", extra={"fields": fields})


@dataclass
class BackendSocket:
    backend: Backend
    path: str
    server: grpc.Server
    health: health.HealthServicer


class ProviderDaemon:
    """All backend sockets of one process: start, readiness, graceful stop."""

    def __init__(
        self,
        provider_dir: str,
        backends: Mapping[str, Backend],
        version_key: VersionKey,
        audit: AuditLog,
        max_workers: int = 16,
    ) -> None:
        self.provider_dir = provider_dir
        self.backends = dict(backends)
        self.version_key = version_key
        self.audit = audit
        self.max_workers = max_workers
        self.sockets: list[BackendSocket] = []

    def socket_path(self, name: str) -> str:
        return os.path.join(self.provider_dir, f"{name}.sock")

    def start(self) -> None:
        os.makedirs(self.provider_dir, exist_ok=True)
        for name, backend in self.backends.items():
            path = self.socket_path(name)
            remove_stale_socket(path)
            server = grpc.server(
                futures.ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix=f"{name}-rpc"),
                options=[("grpc.max_send_message_length", MAX_MESSAGE_BYTES + 64 * 1024)],
            )
            pb_grpc.add_CSIDriverProviderServicer_to_server(
                MountServicer(backend, self.version_key, self.audit), server
            )
            health_servicer = health.HealthServicer()
            health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
            # The socket is created under a 0077 umask so it is never, even briefly, open to others.
            previous = os.umask(0o077)
            try:
                server.add_insecure_port(f"unix:{path}")
                server.start()
            finally:
                os.umask(previous)
            os.chmod(path, 0o600)
            for service in ("", SERVICE_NAME):
                health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
            self.sockets.append(BackendSocket(backend, path, server, health_servicer))
            log.info("listening", extra={"fields": {"backend": name, "socket": path}})

    def healthy(self, timeout: float = 2.0) -> dict[str, bool]:
        """Each socket's answer to a gRPC health check made over the socket itself."""
        return {s.backend.name: socket_is_serving(s.path, timeout) for s in self.sockets}

    def stop(self, grace_seconds: float) -> None:
        """Refuse new calls, let in-flight mounts finish within the grace period, remove the sockets."""
        for s in self.sockets:
            s.health.enter_graceful_shutdown()
        done = [s.server.stop(grace_seconds) for s in self.sockets]
        for event in done:
            event.wait(grace_seconds + 1)
        for s in self.sockets:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(s.path)
        self.audit.close()
        log.info("stopped", extra={"fields": {"sockets": [s.path for s in self.sockets]}})


def remove_stale_socket(path: str) -> None:
    """Remove what a previous run left at path (a socket or a regular file); refuse a directory."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISDIR(mode):
        raise SystemExit(f"cannot listen on {path}: it is a directory")
    os.unlink(path)


def socket_is_serving(path: str, timeout: float) -> bool:
    try:
        with grpc.insecure_channel(f"unix:{path}", options=[("grpc.default_authority", "localhost")]) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            answer = stub.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=timeout)
            return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)
    except grpc.RpcError:
        return False
