"""Logging (JSON lines, redaction by key and by shape), Prometheus metrics, and the audit trail.

Nothing here ever sees a secret value on purpose, but everything here assumes it might: every log
record and audit record passes through `redact` before it is written.
"""

from __future__ import annotations

import contextlib
import json
import logging
import logging.handlers
import re
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, Any

from prometheus_client import Counter, Gauge, Histogram

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------- redaction

REDACTED = "[REDACTED]"
# Keys whose values are never written, matched without regard to case, anywhere in a structure.
SECRET_KEYS = frozenset(
    {
        "token",
        "jwt",
        "client_secret",
        "clientsecret",
        "client_assertion",
        "password",
        "secret",
        "secrets",
        "attributes",
        "contents",
        "access_token",
        "refresh_token",
        "authorization",
        "x-vault-token",
        "csi.storage.k8s.io/serviceaccount.tokens",
    }
)
# Shapes of credentials: JWTs (three base64url parts, the first a JSON header) and Vault/OpenBao tokens.
SECRET_SHAPES = re.compile(
    r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"
    r"|\b(?:hvs|hvb|hvr|s|b|r)\.[A-Za-z0-9_-]{20,}"
)


class KnownSecrets:
    """Credentials seen in mount requests (nodePublishSecretRef values, service-account tokens), so that
    redact_text removes them wherever they show up: in a library's log line or in a backend's error text
    that repeats what it was sent (a client secret has no shape to recognise). Bounded: the oldest go first.
    """

    MIN_LENGTH = 8  # shorter values ("true", a port) would blank out ordinary words
    LIMIT = 1024
    # Bounded by size too: no credential is longer than MAX_VALUE (a JWT is 1-2 KiB), and all kept together
    # stay under CHARS. Longer values are still caught by shape when they are JWTs or Vault tokens.
    MAX_VALUE = 16 * 1024
    CHARS = 1024 * 1024

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: OrderedDict[str, None] = OrderedDict()
        self._chars = 0
        # First MIN_LENGTH characters → the values starting with them: a text is looked up window by window
        # instead of searched once per known value (a thousand values would cost that for every log field).
        self._by_prefix: dict[str, tuple[str, ...]] = {}

    def add(self, values: Iterable[str]) -> None:
        with self._lock:
            changed = False
            for value in values:
                if not self.MIN_LENGTH <= len(value) <= self.MAX_VALUE:
                    continue
                if value not in self._values:
                    changed = True
                    self._chars += len(value)
                self._values[value] = None
                self._values.move_to_end(value)
            while len(self._values) > self.LIMIT or self._chars > self.CHARS:
                oldest, _ = self._values.popitem(last=False)
                self._chars -= len(oldest)
            if changed:
                index: dict[str, list[str]] = {}
                for known in self._values:
                    index.setdefault(known[: self.MIN_LENGTH], []).append(known)
                self._by_prefix = {prefix: tuple(group) for prefix, group in index.items()}

    def scrub(self, text: str) -> str:
        by_prefix = self._by_prefix
        if len(text) < self.MIN_LENGTH or not by_prefix:
            return text
        size = self.MIN_LENGTH
        # Window by window, without holding them all: a long text costs time, not memory.
        found = {value for i in range(len(text) - size + 1) if (group := by_prefix.get(text[i:i + size]))
                 for value in group if value in text}
        for value in sorted(found, key=len, reverse=True):  # a secret containing another is removed whole
            text = text.replace(value, REDACTED)
        return text


KNOWN_SECRETS = KnownSecrets()


def redact_text(text: str) -> str:
    return SECRET_SHAPES.sub(REDACTED, KNOWN_SECRETS.scrub(text))


def redact(value: Any) -> Any:
    """A copy of value with secret-keyed entries and credential-shaped strings replaced."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {
            k: REDACTED if str(k).lower() in SECRET_KEYS else redact(v) for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return value


# ------------------------------------------------------------------------------------------------ logging

_STANDARD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "fields"}


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, then the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact_text(record.getMessage()),
        }
        entry.update(redact(_fields_of(record)))
        if record.exc_info:
            entry["exception"] = redact_text(self.formatException(record.exc_info))
        return json.dumps(entry, default=str, sort_keys=False)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = redact(_fields_of(record))
        text = f"{self.formatTime(record)} {record.levelname:<7} {redact_text(record.getMessage())}"
        if fields:
            text += " " + " ".join(f"{k}={v}" for k, v in fields.items())
        if record.exc_info:
            text += "\n" + redact_text(self.formatException(record.exc_info))
        return text


def _fields_of(record: logging.LogRecord) -> dict[str, Any]:
    fields = dict(getattr(record, "fields", None) or {})
    for key, value in record.__dict__.items():
        if key not in _STANDARD_ATTRS and not key.startswith("_"):
            fields[key] = value
    return fields


def configure_logging(level: str = "info", fmt: str = "json", stream: IO[str] | None = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Library loggers that print request headers or bodies at debug stay at warning, whatever our level.
    for noisy in ("azure", "urllib3", "hpack", "grpc", "msal"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


# ------------------------------------------------------------------------------------------------ metrics
# Labels come from fixed sets only: backend names, ErrorKind values, operation names chosen in code,
# HTTP status classes. Never object names, paths or messages.

MOUNTS = Counter("provider_mounts_total", "Mount calls answered, by backend and error kind ('' = ok).",
                 ["backend", "error_kind"])
MOUNT_SECONDS = Histogram(
    "provider_mount_duration_seconds", "Time to answer a Mount call, by backend and error kind.",
    ["backend", "error_kind"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
MOUNTS_IN_FLIGHT = Gauge("provider_mounts_in_flight", "Mount calls being answered now.", ["backend"])
BACKEND_REQUESTS = Counter(
    "provider_backend_requests_total",
    "Requests to a backend, by backend, operation (login, read, token, list...) and status class.",
    ["backend", "operation", "status_class"],
)
BACKEND_REQUEST_SECONDS = Histogram(
    "provider_backend_request_duration_seconds", "Duration of requests to a backend.",
    ["backend", "operation"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
# How the backend was asked: a fixed set, from the plan's `identity_mode` (anything else, and a mount that
# failed before its plan was made, is ""). Azure: the four modes of an SPC; Vault: the pod's service account.
IDENTITY_MODES = frozenset({"workload-identity", "identity-binding", "service-principal", "managed-identity",
                            "service-account"})
IDENTITY_MOUNTS = Counter(
    "provider_identity_mounts_total",
    "Mount calls answered, by backend, identity mode ('' = failed before it was known) and error kind ('' = ok).",
    ["backend", "identity_mode", "error_kind"],
)
CACHE_LOOKUPS = Counter(
    "provider_cache_lookups_total", "Lookups in the provider's caches (tokens, credentials, values).",
    ["backend", "cache", "result"],
)


BACKEND_THROTTLED = Counter(
    "provider_backend_throttled_total",
    "Backend answers with HTTP 429 (throttled), by backend and operation; also counted as 4xx above.",
    ["backend", "operation"],
)
REMOUNT_FAILURES = Counter(
    "provider_remount_failures_total",
    "Failed Mount calls for a volume this process mounted before: the volume keeps its previous files.",
    ["backend", "error_kind"],
)
AUDIT_WRITE_FAILURES = Counter("provider_audit_write_failures_total", "Audit records that could not be written.")
THROTTLED_STATUS = 429


def identity_mode_of(plan: Any) -> str:
    """The plan's identity mode when it is one of IDENTITY_MODES, else ""."""
    mode = getattr(plan, "identity_mode", "")
    return mode if isinstance(mode, str) and mode in IDENTITY_MODES else ""


def status_class(status: int | None) -> str:
    """'2xx'..'5xx' for an HTTP status, 'error' for a request that got no answer."""
    return f"{status // 100}xx" if status else "error"


def record_backend_request(backend: str, operation: str, status: int | None, seconds: float) -> None:
    """Count one request to a backend (None: no answer came) and how long it took."""
    BACKEND_REQUESTS.labels(backend, operation, status_class(status)).inc()
    if status == THROTTLED_STATUS:
        BACKEND_THROTTLED.labels(backend, operation).inc()
    BACKEND_REQUEST_SECONDS.labels(backend, operation).observe(seconds)


class MountedVolumes:
    """Target paths this process has mounted successfully. A failed Mount for one of them is a failed
    remount (a rotation poll): the driver keeps the volume's previous files, so the pod goes on reading
    them, whereas a failed first mount keeps the pod from starting. Target paths name the pod's UID and
    the volume, so they never repeat across pods. Bounded, least recently mounted forgotten first; a
    restart forgets them all (until each volume's next successful mount)."""

    LIMIT = 8192

    def __init__(self, limit: int = LIMIT) -> None:
        self._lock = threading.Lock()
        self._limit = limit
        self._paths: OrderedDict[str, None] = OrderedDict()

    def mounted(self, target_path: str) -> None:
        if not target_path:
            return
        with self._lock:
            self._paths[target_path] = None
            self._paths.move_to_end(target_path)
            while len(self._paths) > self._limit:
                self._paths.popitem(last=False)

    def was_mounted(self, target_path: str) -> bool:
        with self._lock:
            return bool(target_path) and target_path in self._paths


# -------------------------------------------------------------------------------------------------- audit


class AuditLog:
    """One JSON record per mount: who, what (ids, versions, paths), outcome. Never a value or a token."""

    def __init__(self, target: str | None, max_bytes: int = 50 * 1024 * 1024, backups: int = 3) -> None:
        self._lock = threading.Lock()
        self._stream: IO[str] | None = None
        self._handler: logging.Handler | None = None
        if target == "-":
            self._stream = sys.stdout
        elif target:
            self._handler = _AuditFileHandler(target, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
            self._handler.setFormatter(logging.Formatter("%(message)s"))

    @property
    def enabled(self) -> bool:
        return self._stream is not None or self._handler is not None

    def record(self, entry: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        line = json.dumps(redact(dict(entry)), default=str)
        with self._lock:
            if self._stream is not None:
                try:
                    self._stream.write(line + "\n")
                    self._stream.flush()
                except (OSError, ValueError) as exc:  # a closed or broken stdout: the mount is answered anyway
                    audit_write_failed(exc)
            elif self._handler is not None:
                self._handler.emit(logging.makeLogRecord({"msg": line, "args": None}))

    def close(self) -> None:
        if self._handler is not None:
            # What it still holds could not be written either; each of those records was counted.
            with contextlib.suppress(OSError):
                self._handler.close()


class _AuditFileHandler(logging.handlers.RotatingFileHandler):
    """The audit file: a record that cannot be written (disk full, rotation failed) is counted and logged
    instead of the logging module's traceback on stderr, which repeats the record."""

    def handleError(self, record: logging.LogRecord) -> None:
        audit_write_failed(sys.exc_info()[1])


def audit_write_failed(exc: BaseException | None) -> None:
    AUDIT_WRITE_FAILURES.inc()
    reason = f"{type(exc).__name__}: {exc}" if exc else "unknown"
    log.error("audit record could not be written", extra={"fields": {"error": redact_text(reason)}})


def audit_objects(records: Sequence[Any]) -> list[dict[str, Any]]:
    return [{"id": r.object_id, "version": r.version, "paths": list(r.paths)} for r in records]
