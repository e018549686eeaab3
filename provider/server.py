"""The gRPC side: one server per backend on `<provider-dir>/<name>.sock`, the Mount pipeline, shutdown.

The server knows nothing of Vault or Azure. A Mount is one pass: request → the backend's plan (its check,
contract.py) → backend.fetch → output → the MountResponse (wire.py). ProviderError is caught here and only
here, and becomes the gRPC status; anything else is a bug, logged with its traceback and answered
INTERNAL without one. Every failure is sent with `context.abort` (trailers-only), the only form the
driver's gRPC client retries.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
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
from provider.audit import AuditLog, audit_objects
from provider.contract import Backend, plan_mount
from provider.deadline import deadline_from, time_left
from provider.errors import ErrorKind, ProviderError, bounded
from provider.files import ObjectRecord, VersionKey
from provider.limits import MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES
from provider.metrics import METRICS, Metrics, MountedVolumes
from provider.preflight import StartupError, check_provider_dir, check_socket_path
from provider.redaction import REDACTOR, Redactor
from provider.request import MountContext, parse_mount_request
from provider.templates import apply_templates, parse_templates
from provider.wire import build_response, status_code

log = logging.getLogger(__name__)

API_VERSION = "v1alpha1"
RUNTIME_NAME = "secrets-store-csi-provider"
SERVICE_NAME = "v1alpha1.CSIDriverProvider"


class MountServicer(pb_grpc.CSIDriverProviderServicer):
    """Version and Mount for one backend."""

    def __init__(self, backend: Backend[Any], version_key: VersionKey, audit: AuditLog, metrics: Metrics = METRICS,
                 redactor: Redactor = REDACTOR) -> None:
        self.backend = backend
        self.version_key = version_key
        self.audit = audit
        self.metrics = metrics
        self.redactor = redactor
        self.mounted = MountedVolumes()

    def Version(self, request: pb.VersionRequest, context: grpc.ServicerContext) -> pb.VersionResponse:
        return pb.VersionResponse(version=API_VERSION, runtime_name=RUNTIME_NAME, runtime_version=__version__)

    def Mount(self, request: pb.MountRequest, context: grpc.ServicerContext) -> pb.MountResponse:
        started = time.monotonic()
        name = self.backend.declaration.name
        public_keys = self.backend.declaration.public_secret_keys
        ctx: MountContext | None = None
        records: list[ObjectRecord] = []
        error: ProviderError | None = None
        mode = ""
        self.metrics.labels(self.metrics.mounts_in_flight, name).inc()
        try:
            deadline = deadline_from(context.time_remaining())
            ctx = parse_mount_request(request.attributes, request.secrets, request.permission, request.target_path)
            self.redactor.known.add([*(v for k, v in ctx.secrets.items() if k.lower() not in public_keys),
                               *(t.token for t in ctx.tokens.values())])
            # Between stages the deadline is checked again, so the work stops once the driver has stopped waiting.
            templates = parse_templates(ctx.parameters)
            _still_wanted(context, deadline, "the objects were checked")
            plan = plan_mount(self.backend, ctx)
            mode = self._identity_mode(plan)
            _still_wanted(context, deadline, "the objects were read")
            fetched = self.backend.fetch(plan, deadline)
            _still_wanted(context, deadline, "the templates were rendered")
            files = apply_templates(templates, fetched)
            _still_wanted(context, deadline, "the answer was built")
            response, records = build_response(files, ctx.default_mode, self.version_key)
        except ProviderError as exc:
            error = exc
        except Exception:
            log.exception("mount failed with an unexpected error", extra={"fields": {"backend": name}})
            error = ProviderError(
                ErrorKind.INTERNAL, f"internal error in the {name} provider; the provider log has the details"
            )
        finally:
            self.metrics.labels(self.metrics.mounts_in_flight, name).dec()
        elapsed = time.monotonic() - started
        kind = error.kind.value if error else ""
        self.metrics.labels(self.metrics.mounts, name, kind).inc()
        self.metrics.labels(self.metrics.identity_mounts, name, mode, kind).inc()
        self.metrics.labels(self.metrics.mount_seconds, name, kind).observe(elapsed)
        if error is None:
            self.mounted.mounted(request.target_path)
        elif self.mounted.was_mounted(request.target_path):
            self.metrics.labels(self.metrics.remount_failures, name, kind).inc()
        # Redacted (a backend's words may repeat a credential), then bounded: the driver must be able to read it.
        details = bounded(self.redactor.text(error.message)) if error is not None else ""
        self._report(ctx, records, error, details, elapsed, mode)
        if error is not None:
            # abort, not set_code + return: only a status without headers or a message ("trailers-only")
            # leaves the call uncommitted, so the driver's retry policy can act on UNAVAILABLE. abort raises.
            context.abort(status_code(error.kind), details)
        return response

    def _identity_mode(self, plan: Any) -> str:
        """The plan's identity mode when it is one the backend declares (a metric label: a fixed set), else ""."""
        mode = getattr(plan, "identity_mode", "")
        return mode if isinstance(mode, str) and mode in self.backend.declaration.identity_modes else ""

    def _report(self, ctx: MountContext | None, records: list[ObjectRecord], error: ProviderError | None,
                details: str, elapsed: float, identity_mode: str = "") -> None:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "backend": self.backend.declaration.name,
            "pod": {
                "namespace": ctx.pod.namespace if ctx else "",
                "name": ctx.pod.name if ctx else "",
                "uid": ctx.pod.uid if ctx else "",
            },
            "serviceAccount": ctx.pod.service_account if ctx else "",
            "identityMode": identity_mode,
            "secretProviderClass": ctx.spc_name if ctx else "",
            "objects": audit_objects(records),
            "outcome": "error" if error else "ok",
            "errorKind": error.kind.value if error else "",
            "durationSeconds": round(elapsed, 4),
        }
        self.audit.record(entry)
        fields = {k: entry[k] for k in ("backend", "pod", "secretProviderClass", "identityMode", "errorKind",
                                        "durationSeconds")}
        fields["objects"] = len(records)
        if error is None:
            log.info("mount answered", extra={"fields": fields})
        else:
            fields["error"] = details
            log.warning("mount failed", extra={"fields": fields})


def _still_wanted(context: grpc.ServicerContext, deadline: float, step: str) -> None:
    """DEADLINE_EXCEEDED when the mount's time is up or the driver has cancelled the call."""
    if not context.is_active():
        raise ProviderError(ErrorKind.DEADLINE_EXCEEDED, f"the driver stopped waiting before {step}")
    time_left(deadline, step)


@dataclass
class BackendSocket:
    backend: Backend[Any]
    path: str
    server: grpc.Server
    health: health.HealthServicer
    identity: tuple[int, int]  # (st_dev, st_ino) of the socket this process created at path


class ProviderDaemon:
    """All backend sockets of one process: start, readiness, graceful stop."""

    def __init__(
        self,
        provider_dir: str,
        backends: Mapping[str, Backend[Any]],
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
        """Listen on every backend's socket, or raise StartupError (nothing left listening) saying why not."""
        check_provider_dir(self.provider_dir)
        try:
            for name, backend in self.backends.items():
                self.sockets.append(self._listen(name, backend))
        except BaseException:
            self._close_sockets()
            raise

    def _listen(self, name: str, backend: Backend[Any]) -> BackendSocket:
        path = self.socket_path(name)
        check_socket_path(path)
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix=f"{name}-rpc"),
            options=[("grpc.max_send_message_length", MAX_RESPONSE_BYTES + 64 * 1024),
                     ("grpc.max_receive_message_length", MAX_REQUEST_BYTES)],
        )
        pb_grpc.add_CSIDriverProviderServicer_to_server(MountServicer(backend, self.version_key, self.audit), server)
        health_servicer = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        # gRPC binds a path it will unlink, whatever is there by then, when it stops: it binds a private
        # name, and the socket is renamed into place, ready and 0600, so stopping never removes a socket
        # another process put at the public path. The 0077 umask keeps it private even before the chmod.
        staging = staging_path(path)
        previous = os.umask(0o077)
        try:
            server.add_insecure_port(f"unix:{staging}")
            server.start()
            os.chmod(staging, 0o600)
            os.rename(staging, path)
        except (RuntimeError, OSError) as exc:
            server.stop(None)
            with contextlib.suppress(OSError):
                os.unlink(staging)
            cause = (exc.strerror or str(exc) if isinstance(exc, OSError)
                     else "gRPC could not bind it (set GRPC_VERBOSITY=debug for its reason)")
            raise StartupError(f"cannot listen on {path}: {cause}") from None
        finally:
            os.umask(previous)
        identity = os.lstat(path)
        for service in ("", SERVICE_NAME):
            health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
        log.info("listening", extra={"fields": {"backend": name, "socket": path}})
        return BackendSocket(backend, path, server, health_servicer, (identity.st_dev, identity.st_ino))

    def healthy(self, timeout: float = 2.0) -> dict[str, bool]:
        """Each socket's answer to a gRPC health check made over the socket itself."""
        return {s.backend.declaration.name: socket_is_serving(s.path, timeout) for s in self.sockets}

    def stop(self, grace_seconds: float) -> None:
        """Refuse new calls, let in-flight mounts finish within the grace period, remove the sockets."""
        for s in self.sockets:
            s.health.enter_graceful_shutdown()
        done = [s.server.stop(grace_seconds) for s in self.sockets]
        for event in done:
            event.wait(grace_seconds + 1)
        self._close_sockets()
        self.audit.close()
        log.info("stopped", extra={"fields": {"sockets": [s.path for s in self.sockets]}})

    def _close_sockets(self) -> None:
        """Remove each socket this process created; a path another process has bound since is left alone."""
        for s in self.sockets:
            s.server.stop(None)
            try:
                now = os.lstat(s.path)
            except FileNotFoundError:
                continue
            if (now.st_dev, now.st_ino) != s.identity:
                log.warning("socket replaced by another process; left in place",
                            extra={"fields": {"socket": s.path}})
                continue
            with contextlib.suppress(FileNotFoundError):
                os.unlink(s.path)


def staging_path(path: str) -> str:
    """A fresh hidden name beside path, no longer than it (so it fits wherever path fits)."""
    directory, name = os.path.split(path)
    return os.path.join(directory, "." + secrets.token_hex(len(name))[: len(name) - 1])


def socket_is_serving(path: str, timeout: float) -> bool:
    try:
        with grpc.insecure_channel(f"unix:{path}", options=[("grpc.default_authority", "localhost")]) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            answer = stub.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=timeout)
            return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)
    except grpc.RpcError:
        return False
