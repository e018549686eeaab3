"""Prometheus metrics, on a registry given to `Metrics` (the process's default one unless a test builds its own).

Labels come from fixed sets only: backend names, ErrorKind values, operation names chosen in code, HTTP
status classes, cache names and results. Never object names, paths or messages.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

MOUNT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
THROTTLED_STATUS = 429
# Label sets whose child metric is kept at hand: the fixed sets above come to a few dozen.
MAX_KEPT_CHILDREN = 1024


class Metrics:
    """Every metric of the provider, registered on `registry`."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.registry = registry
        self.mounts = Counter("provider_mounts_total", "Mount calls answered, by backend and error kind ('' = ok).",
                              ["backend", "error_kind"], registry=registry)
        self.mount_seconds = Histogram(
            "provider_mount_duration_seconds", "Time to answer a Mount call, by backend and error kind.",
            ["backend", "error_kind"], buckets=MOUNT_BUCKETS, registry=registry,
        )
        self.mounts_in_flight = Gauge("provider_mounts_in_flight", "Mount calls being answered now.", ["backend"],
                                      registry=registry)
        self.backend_requests = Counter(
            "provider_backend_requests_total",
            "Requests to a backend, by backend, operation (login, read, token, list...) and status class.",
            ["backend", "operation", "status_class"], registry=registry,
        )
        self.backend_request_seconds = Histogram(
            "provider_backend_request_duration_seconds", "Duration of requests to a backend.",
            ["backend", "operation"], buckets=REQUEST_BUCKETS, registry=registry,
        )
        self.identity_mounts = Counter(
            "provider_identity_mounts_total",
            "Mount calls answered, by backend, identity mode ('' = failed before it was known) and error kind "
            "('' = ok).",
            ["backend", "identity_mode", "error_kind"], registry=registry,
        )
        self.cache_lookups = Counter(
            "provider_cache_lookups_total", "Lookups in the provider's caches (tokens, credentials, values).",
            ["backend", "cache", "result"], registry=registry,
        )
        self.backend_throttled = Counter(
            "provider_backend_throttled_total",
            "Backend answers with HTTP 429 (throttled), by backend and operation; also counted as 4xx above.",
            ["backend", "operation"], registry=registry,
        )
        self.remount_failures = Counter(
            "provider_remount_failures_total",
            "Failed Mount calls for a volume this process mounted before: the volume keeps its previous files.",
            ["backend", "error_kind"], registry=registry,
        )
        self.audit_write_failures = Counter("provider_audit_write_failures_total",
                                            "Audit records that could not be written.", registry=registry)
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}

    def labels(self, metric: MetricWrapperBase, *values: str) -> Any:
        """metric.labels(*values), the child kept: prometheus-client checks and looks up the labels under a lock
        at every call, and a mount makes a dozen of them."""
        key = (id(metric), values)
        child = self._children.get(key)
        if child is None:
            child = metric.labels(*values)
            if len(self._children) < MAX_KEPT_CHILDREN:
                self._children[key] = child
        return child

    def backend_request(self, backend: str, operation: str, status: int | None, seconds: float) -> None:
        """One request to a backend: its status (None: no answer) and how long it took."""
        self.labels(self.backend_requests, backend, operation, status_class(status)).inc()
        if status == THROTTLED_STATUS:
            self.labels(self.backend_throttled, backend, operation).inc()
        self.labels(self.backend_request_seconds, backend, operation).observe(seconds)

    def cache_lookup(self, backend: str, cache: str, result: str) -> None:
        self.labels(self.cache_lookups, backend, cache, result).inc()


def status_class(status: int | None) -> str:
    """'2xx'..'5xx' for an HTTP status, 'error' for a request that got no answer."""
    return f"{status // 100}xx" if status else "error"


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


# The process's metrics, on the default registry that /metrics serves.
METRICS = Metrics()
