"""The opt-in value cache (`--cache-ttl`): Vault's answer to a read, kept a short time for the same identity.

The key is (token identity, request): the identity is the pod, or the service account under
`--vault-token-scope service-account`, so a value read with one identity is never handed to another.
Only answers to GET and LIST without a lease are kept (a PUT or POST may create something, and a
leased answer belongs to one pod: leases.py), and only successful ones: a refusal is never cached,
so a denied identity is asked for again every time.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

from provider.backends.vault.declaration import DECLARATION
from provider.metrics import METRICS, Metrics

BACKEND = DECLARATION.name  # the metrics label
CACHEABLE_METHODS = frozenset({"GET", "LIST"})
_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?$")


def parse_duration(text: str) -> float:
    """Seconds from `90`, `90s`, `2m`, `1m30s` or `1h` (Go's duration units, as the driver's flags take
    them); raises ValueError."""
    text = text.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text)
    found = _DURATION.match(text)
    if not text or found is None or not any(found.groups()):
        raise ValueError(f"{text!r} is not a duration such as 30s, 2m or 1m30s")
    hours, minutes, seconds = (float(part) if part else 0.0 for part in found.groups())
    return hours * 3600 + minutes * 60 + seconds


@dataclass
class _Entry:
    body: Mapping[str, Any] = field(repr=False)
    until: float


class ValueCache:
    """Bodies by (identity, request) for `ttl` seconds; at most `size` kept; ttl <= 0 disables it."""

    def __init__(self, ttl: float, size: int = 4096, metrics: Metrics = METRICS,
                 now: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.size = size
        self.metrics = metrics
        self.now = now
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.ttl > 0 and self.size > 0

    def get(self, key: Hashable) -> Mapping[str, Any] | None:
        if not self.enabled:
            return None
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and self.now() < entry.until:
                self._entries.move_to_end(key)
                self.metrics.cache_lookup(BACKEND, "value", "hit")
                return entry.body
            if entry is not None:
                del self._entries[key]
        self.metrics.cache_lookup(BACKEND, "value", "expired" if entry is not None else "miss")
        return None

    def put(self, key: Hashable, body: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        with self._lock:
            self._entries[key] = _Entry(body, self.now() + self.ttl)
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
