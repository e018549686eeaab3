"""The opt-in value cache (`--cache-ttl`): Vault's answer to a read, kept a short time for the same identity.

The key is (token identity, request): the identity is the pod, or the service account under
`--vault-token-scope service-account`, so a value read with one identity is never handed to another.
Only answers to GET and LIST without a lease are kept (a PUT or POST may create something, and a
leased answer belongs to one pod: leases.py), and only successful ones: a refusal is never cached,
so a denied identity is asked for again every time.
"""

from __future__ import annotations

import json
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
# Bounded by size as well as by count: an answer (with its key) over KEPT_CHARS is not kept, and all kept
# answers together stay under CACHE_CHARS, whatever the secrets written to Vault.
KEPT_CHARS = 64 * 1024
CACHE_CHARS = 16 * 1024 * 1024
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


def kept_size(key: Hashable, body: Mapping[str, Any]) -> int:
    """About the memory a kept answer takes: its key and its JSON, in characters."""
    return len(repr(key)) + len(json.dumps(body, default=str))


@dataclass
class _Entry:
    body: Mapping[str, Any] = field(repr=False)
    until: float
    size: int = 0


class ValueCache:
    """Bodies by (identity, request) for `ttl` seconds; at most `size` kept, and `chars` of them; ttl <= 0
    disables it."""

    def __init__(self, ttl: float, size: int = 4096, chars: int = CACHE_CHARS, metrics: Metrics = METRICS,
                 now: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.size = size
        self.chars = chars
        self.metrics = metrics
        self.now = now
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._kept = 0
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
                self._drop(key)
        self.metrics.cache_lookup(BACKEND, "value", "expired" if entry is not None else "miss")
        return None

    def put(self, key: Hashable, body: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        size = kept_size(key, body)
        if size > KEPT_CHARS:
            return
        with self._lock:
            self._drop(key)
            self._entries[key] = _Entry(body, self.now() + self.ttl, size)
            self._kept += size
            while len(self._entries) > self.size or self._kept > self.chars:
                self._drop(next(iter(self._entries)))

    def _drop(self, key: Hashable) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._kept -= entry.size

    @property
    def kept_chars(self) -> int:
        return self._kept

    def __len__(self) -> int:
        return len(self._entries)
