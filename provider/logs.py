"""Logging: JSON lines (or text for people), every message and field redacted, noisy libraries quietened."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import IO, Any

from provider.redaction import REDACTOR, Redactor

_STANDARD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "fields"}


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, then the record's fields."""

    def __init__(self, redactor: Redactor = REDACTOR) -> None:
        super().__init__()
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": self.redactor.text(record.getMessage()),
        }
        entry.update(self.redactor.value(_fields_of(record)))
        if record.exc_info:
            entry["exception"] = self.redactor.text(self.formatException(record.exc_info))
        return json.dumps(entry, default=str, sort_keys=False)


class TextFormatter(logging.Formatter):
    def __init__(self, redactor: Redactor = REDACTOR) -> None:
        super().__init__()
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        fields = self.redactor.value(_fields_of(record))
        text = f"{self.formatTime(record)} {record.levelname:<7} {self.redactor.text(record.getMessage())}"
        if fields:
            text += " " + " ".join(f"{k}={v}" for k, v in fields.items())
        if record.exc_info:
            text += "\n" + self.redactor.text(self.formatException(record.exc_info))
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
