"""The audit trail: one JSON record per mount (who, which objects and versions, outcome), redacted."""

from __future__ import annotations

import contextlib
import json
import logging
import logging.handlers
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

from provider.metrics import METRICS, Metrics
from provider.redaction import REDACTOR, Redactor

log = logging.getLogger(__name__)


class AuditLog:
    """One JSON record per mount: who, what (ids, versions, paths), outcome. Never a value or a token."""

    def __init__(self, target: str | None, max_bytes: int = 50 * 1024 * 1024, backups: int = 3,
                 redactor: Redactor = REDACTOR, metrics: Metrics = METRICS) -> None:
        self._redactor = redactor
        self._metrics = metrics
        self._lock = threading.Lock()
        self._stream: IO[str] | None = None
        self._handler: logging.Handler | None = None
        if target == "-":
            self._stream = sys.stdout
        elif target:
            handler = _AuditFileHandler(target, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
            handler.failed = self._write_failed
            handler.setFormatter(logging.Formatter("%(message)s"))
            self._handler = handler

    @property
    def enabled(self) -> bool:
        return self._stream is not None or self._handler is not None

    def record(self, entry: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        line = json.dumps(self._redactor.value(dict(entry)), default=str)
        with self._lock:
            if self._stream is not None:
                try:
                    self._stream.write(line + "\n")
                    self._stream.flush()
                except (OSError, ValueError) as exc:  # a closed or broken stdout: the mount is answered anyway
                    self._write_failed(exc)
            elif self._handler is not None:
                self._handler.emit(logging.makeLogRecord({"msg": line, "args": None}))

    def close(self) -> None:
        if self._handler is not None:
            # What it still holds could not be written either; each of those records was counted.
            with contextlib.suppress(OSError):
                self._handler.close()

    def _write_failed(self, exc: BaseException | None) -> None:
        self._metrics.audit_write_failures.inc()
        reason = f"{type(exc).__name__}: {exc}" if exc else "unknown"
        log.error("audit record could not be written", extra={"fields": {"error": self._redactor.text(reason)}})


class _AuditFileHandler(logging.handlers.RotatingFileHandler):
    """The audit file: a record that cannot be written (disk full, rotation failed) is counted and logged
    instead of the logging module's traceback on stderr, which repeats the record."""

    failed: Callable[[BaseException | None], None]

    def handleError(self, record: logging.LogRecord) -> None:
        self.failed(sys.exc_info()[1])


def audit_objects(records: Sequence[Any]) -> list[dict[str, Any]]:
    return [{"id": r.object_id, "version": r.version, "paths": list(r.paths)} for r in records]
