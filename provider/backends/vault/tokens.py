"""The Vault token cache: one token per pod identity and login setting, until near its TTL.

A token is never shared between pods: the key holds the pod's namespace, service account and uid as
well as the address, namespace, auth mount, role and audience of the login.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from provider.observability import CACHE_LOOKUPS

BACKEND = "vault"


@dataclass(frozen=True)
class TokenKey:
    """Whose Vault token: one per pod identity and login setting. Never shared between pods."""

    address: str
    namespace: str
    auth_mount: str
    role: str
    audience: str
    pod_namespace: str
    service_account: str
    pod_uid: str


@dataclass
class _Entry:
    token: str = field(repr=False)
    renew_at: float


class TokenCache:
    """Vault tokens by TokenKey until 80% of their TTL has passed; LRU-bounded; size <= 0 disables it."""

    def __init__(self, size: int = 1000) -> None:
        self.size = size
        self._entries: OrderedDict[TokenKey, _Entry] = OrderedDict()
        self._locks: dict[TokenKey, threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, key: TokenKey) -> str | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and time.monotonic() < entry.renew_at:
                self._entries.move_to_end(key)
                CACHE_LOOKUPS.labels(BACKEND, "token", "hit").inc()
                return entry.token
            if entry is not None:
                del self._entries[key]
        CACHE_LOOKUPS.labels(BACKEND, "token", "expired" if entry is not None else "miss").inc()
        return None

    def put(self, key: TokenKey, token: str, ttl: float) -> None:
        if self.size <= 0:
            return
        renew_at = time.monotonic() + (ttl * 0.8 if ttl > 0 else 24 * 3600.0)
        with self._lock:
            self._entries[key] = _Entry(token, renew_at)
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def lock_for(self, key: TokenKey) -> threading.Lock:
        """The lock serialising logins of one identity, so parallel mounts of a pod log in once."""
        with self._lock:
            if len(self._locks) > 4 * max(self.size, 64):
                self._locks = {k: v for k, v in self._locks.items() if v.locked() or k in self._entries}
            return self._locks.setdefault(key, threading.Lock())
