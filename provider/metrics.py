"""Prometheus metrics, on a registry given to `Metrics` (the process's default one unless a test builds its own).

Labels come from fixed sets only: backend names, ErrorKind values, operation names chosen in code, HTTP
status classes, cache names and results. Never object names, paths or messages.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

MOUNT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


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
        self.cache_lookups = Counter(
            "provider_cache_lookups_total", "Lookups in the provider's caches (tokens, credentials, values).",
            ["backend", "cache", "result"], registry=registry,
        )

    def backend_request(self, backend: str, operation: str, status: int | None, seconds: float) -> None:
        """One request to a backend: its status (None: no answer) and how long it took."""
        self.backend_requests.labels(backend, operation, status_class(status)).inc()
        self.backend_request_seconds.labels(backend, operation).observe(seconds)

    def cache_lookup(self, backend: str, cache: str, result: str) -> None:
        self.cache_lookups.labels(backend, cache, result).inc()


def status_class(status: int | None) -> str:
    """'2xx'..'5xx' for an HTTP status, 'error' for a request that got no answer."""
    return f"{status // 100}xx" if status else "error"


# The process's metrics, on the default registry that /metrics serves.
METRICS = Metrics()
