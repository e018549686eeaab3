"""The audit trail: one JSON record per mount (who, which objects and versions, outcome), redacted."""

from __future__ import annotations

import json
import logging
import logging.handlers
import sys
import threading
from collections.abc import Mapping, Sequence
from typing import IO, Any

from provider.redaction import REDACTOR, Redactor


class AuditLog:
    """One JSON record per mount: who, what (ids, versions, paths), outcome. Never a value or a token."""

    def __init__(self, target: str | None, max_bytes: int = 50 * 1024 * 1024, backups: int = 3,
                 redactor: Redactor = REDACTOR) -> None:
        self._redactor = redactor
        self._lock = threading.Lock()
        self._stream: IO[str] | None = None
        self._handler: logging.Handler | None = None
        if target == "-":
            self._stream = sys.stdout
        elif target:
            self._handler = logging.handlers.RotatingFileHandler(
                target, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
            )
            self._handler.setFormatter(logging.Formatter("%(message)s"))

    @property
    def enabled(self) -> bool:
        return self._stream is not None or self._handler is not None

    def record(self, entry: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        line = json.dumps(self._redactor.value(dict(entry)), default=str)
        with self._lock:
            if self._stream is not None:
                self._stream.write(line + "\n")
                self._stream.flush()
            elif self._handler is not None:
                self._handler.emit(logging.makeLogRecord({"msg": line, "args": None}))

    def close(self) -> None:
        if self._handler is not None:
            self._handler.close()


def audit_objects(records: Sequence[Any]) -> list[dict[str, Any]]:
    return [{"id": r.object_id, "version": r.version, "paths": list(r.paths)} for r in records]
