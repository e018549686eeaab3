"""The metric helpers: backend requests with throttling apart, remembered volumes, audit write failures."""

from __future__ import annotations

import io
import logging

import pytest
from prometheus_client import CollectorRegistry

from provider.audit import AuditLog
from provider.metrics import Metrics, MountedVolumes


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(CollectorRegistry())


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


@pytest.mark.parametrize(
    ("status", "status_class", "throttled"),
    [(200, "2xx", 0), (404, "4xx", 0), (429, "4xx", 1), (503, "5xx", 0), (None, "error", 0)],
)
def test_backend_requests_count_429_as_throttled_too(metrics: Metrics, status: int | None, status_class: str,
                                                     throttled: int) -> None:
    labels = {"backend": "unit", "operation": f"op-{status}"}
    metrics.backend_request("unit", f"op-{status}", status, 0.02)
    assert sample(metrics, "provider_backend_requests_total", status_class=status_class, **labels) == 1
    assert sample(metrics, "provider_backend_throttled_total", **labels) == throttled
    assert sample(metrics, "provider_backend_request_duration_seconds_count", **labels) == 1


def test_mounted_volumes_remember_paths_up_to_their_limit() -> None:
    volumes = MountedVolumes(limit=2)
    assert not volumes.was_mounted("/a")
    volumes.mounted("/a")
    volumes.mounted("/b")
    volumes.mounted("/a")  # mounted again: now the most recent
    volumes.mounted("/c")
    assert volumes.was_mounted("/a") and volumes.was_mounted("/c")
    assert not volumes.was_mounted("/b")
    volumes.mounted("")
    assert not volumes.was_mounted("")


def test_a_full_disk_under_the_audit_file_is_counted_and_logged(metrics: Metrics,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    audit = AuditLog("/dev/full", metrics=metrics)
    with caplog.at_level(logging.ERROR, logger="provider.audit"):
        audit.record({"outcome": "ok", "pod": {"name": "web-1"}})
    audit.close()
    assert sample(metrics, "provider_audit_write_failures_total") == 1
    (record,) = caplog.records
    assert record.getMessage() == "audit record could not be written"
    assert "web-1" not in caplog.text  # the record itself is not repeated in the log


def test_a_closed_stdout_for_the_audit_is_counted(metrics: Metrics, monkeypatch: pytest.MonkeyPatch) -> None:
    closed = io.StringIO()
    closed.close()
    monkeypatch.setattr("sys.stdout", closed)
    audit = AuditLog("-", metrics=metrics)
    audit.record({"outcome": "ok"})
    assert sample(metrics, "provider_audit_write_failures_total") == 1
