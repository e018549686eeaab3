"""The Vault token cache: one token per identity and login setting, until 80% of its TTL has passed.

By default the identity is the pod: the key holds the pod's namespace, service account and uid as
well as the address, namespace, auth mount, role and audience of the login, so a token is never
shared between pods. With `--vault-token-scope service-account` the pod uid is left out of the key
and the pods of one service account share a token (see docs/performance.md for when that is safe).

A token's life (`TokenLife`) is shared with the leases created with it: Vault revokes a token's
leases when the token expires, so a lease can be no longer lived than its token.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from provider.backends.vault.declaration import DECLARATION
from provider.metrics import METRICS, Metrics

BACKEND = DECLARATION.name  # the metrics label
RENEW_AT = 0.8  # share of a token's TTL after which the cache no longer hands it out
NO_TTL_SECONDS = 24 * 3600.0  # how long a token without a TTL is kept
# Keys are made of SPC parameters; a login setting longer than this (real ones are a few hundred
# characters) is not kept, so the cache's size is bounded by count times this.
MAX_KEY_CHARS = 4096


@dataclass(frozen=True)
class TokenKey:
    """Whose Vault token: one per identity and login setting. `pod_uid` is "" when tokens are shared by the
    pods of a service account."""

    address: str
    namespace: str
    auth_mount: str
    role: str
    audience: str
    pod_namespace: str
    service_account: str
    pod_uid: str

    def for_pod(self, pod_uid: str) -> TokenKey:
        """The same login setting, for one pod: what its leases are kept under."""
        return TokenKey(self.address, self.namespace, self.auth_mount, self.role, self.audience,
                        self.pod_namespace, self.service_account, pod_uid)


@dataclass(eq=False)
class TokenLife:
    """A Vault token and when it expires (time.monotonic()); renewal moves `granted` and `ttl` on."""

    token: str = field(repr=False)
    ttl: float  # seconds from `granted`; 0: no expiry
    renewable: bool = False
    granted: float = field(default_factory=time.monotonic)
    increment: float = 0.0  # what to ask for at renewal: the TTL of the login

    def __post_init__(self) -> None:
        self.increment = self.increment or self.ttl

    @property
    def expires(self) -> float:
        return self.granted + self.ttl if self.ttl > 0 else math.inf

    @property
    def renew_at(self) -> float:
        return self.granted + (self.ttl * RENEW_AT if self.ttl > 0 else NO_TTL_SECONDS)

    def renewed(self, ttl: float, now: float) -> None:
        self.granted, self.ttl = now, ttl


class TokenCache:
    """TokenLives by TokenKey until RENEW_AT of their TTL has passed; LRU-bounded; size <= 0 disables it."""

    def __init__(self, size: int, metrics: Metrics = METRICS, now: Callable[[], float] = time.monotonic) -> None:
        self.size = size
        self.metrics = metrics
        self.now = now
        self._entries: OrderedDict[TokenKey, TokenLife] = OrderedDict()
        self._locks: dict[TokenKey, threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, key: TokenKey) -> str | None:
        life = self.life(key)
        return life.token if life is not None else None

    def life(self, key: TokenKey) -> TokenLife | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and self.now() < entry.renew_at:
                self._entries.move_to_end(key)
                self.metrics.cache_lookup(BACKEND, "token", "hit")
                return entry
            if entry is not None:
                del self._entries[key]
        self.metrics.cache_lookup(BACKEND, "token", "expired" if entry is not None else "miss")
        return None

    def put(self, key: TokenKey, token: str, ttl: float, renewable: bool = False) -> TokenLife:
        life = TokenLife(token, ttl, renewable, granted=self.now())
        if self.size <= 0 or not _keepable(key):
            return life
        with self._lock:
            self._entries[key] = life
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return life

    def lock_for(self, key: TokenKey) -> threading.Lock:
        """The lock serialising logins of one identity, so parallel mounts of a pod log in once."""
        if not _keepable(key):
            return threading.Lock()  # such a key is never kept, so there is nothing to share
        with self._lock:
            if len(self._locks) > 4 * max(self.size, 64):
                self._locks = {k: v for k, v in self._locks.items() if v.locked() or k in self._entries}
            return self._locks.setdefault(key, threading.Lock())


def _keepable(key: TokenKey) -> bool:
    return sum(len(part) for part in vars(key).values()) <= MAX_KEY_CHARS
