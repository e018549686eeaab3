"""Redaction of what is logged or audited: by key, by the shape of a credential, and by value for the
credentials mount requests carried (KnownSecrets).

Nothing logged ever holds a secret value on purpose, but everything assumes it might: every log record
and audit record passes through a Redactor before it is written. The process has one (REDACTOR, over
KNOWN_SECRETS); tests and tools may build their own.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "[REDACTED]"
# Keys whose values are never written, matched without regard to case, anywhere in a structure.
SECRET_KEYS = frozenset(
    {
        "token",
        "jwt",
        "client_secret",
        "clientsecret",
        "client_assertion",
        "password",
        "secret",
        "secrets",
        "attributes",
        "contents",
        "access_token",
        "refresh_token",
        "authorization",
        "x-vault-token",
        "csi.storage.k8s.io/serviceaccount.tokens",
    }
)
# Shapes of credentials: JWTs (three base64url parts, the first a JSON header) and Vault/OpenBao tokens.
SECRET_SHAPES = re.compile(
    r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"
    r"|\b(?:hvs|hvb|hvr|s|b|r)\.[A-Za-z0-9_-]{20,}"
)


class KnownSecrets:
    """Credentials seen in mount requests (nodePublishSecretRef values, service-account tokens), so that
    redact_text removes them wherever they show up: in a library's log line or in a backend's error text
    that repeats what it was sent (a client secret has no shape to recognise). Bounded: the oldest go first.
    """

    MIN_LENGTH = 8  # shorter values ("true", a port) would blank out ordinary words
    LIMIT = 1024
    # Bounded by size too: no credential is longer than MAX_VALUE (a JWT is 1-2 KiB), and all kept together
    # stay under CHARS. Longer values are still caught by shape when they are JWTs or Vault tokens.
    MAX_VALUE = 16 * 1024
    CHARS = 1024 * 1024

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: OrderedDict[str, None] = OrderedDict()
        self._chars = 0
        # First MIN_LENGTH characters → the values starting with them: a text is looked up window by window
        # instead of searched once per known value (a thousand values would cost that for every log field).
        self._by_prefix: dict[str, tuple[str, ...]] = {}

    def add(self, values: Iterable[str]) -> None:
        with self._lock:
            changed = False
            for value in values:
                if not self.MIN_LENGTH <= len(value) <= self.MAX_VALUE:
                    continue
                if value not in self._values:
                    changed = True
                    self._chars += len(value)
                self._values[value] = None
                self._values.move_to_end(value)
            while len(self._values) > self.LIMIT or self._chars > self.CHARS:
                oldest, _ = self._values.popitem(last=False)
                self._chars -= len(oldest)
            if changed:
                index: dict[str, list[str]] = {}
                for known in self._values:
                    index.setdefault(known[: self.MIN_LENGTH], []).append(known)
                self._by_prefix = {prefix: tuple(group) for prefix, group in index.items()}

    def scrub(self, text: str) -> str:
        by_prefix = self._by_prefix
        if len(text) < self.MIN_LENGTH or not by_prefix:
            return text
        size = self.MIN_LENGTH
        # Window by window, without holding them all: a long text costs time, not memory.
        found = {value for i in range(len(text) - size + 1) if (group := by_prefix.get(text[i:i + size]))
                 for value in group if value in text}
        for value in sorted(found, key=len, reverse=True):  # a secret containing another is removed whole
            text = text.replace(value, REDACTED)
        return text


class Redactor:
    """Redaction by key and by shape, plus the credentials `known` has seen."""

    def __init__(self, known: KnownSecrets | None = None) -> None:
        self.known = known if known is not None else KnownSecrets()

    def text(self, text: str) -> str:
        return SECRET_SHAPES.sub(REDACTED, self.known.scrub(text))

    def value(self, value: Any) -> Any:
        """A copy of value with secret-keyed entries and credential-shaped strings replaced."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {
                k: REDACTED if str(k).lower() in SECRET_KEYS else self.value(v) for k, v in value.items()
            }
        if isinstance(value, (list, tuple)):
            return [self.value(v) for v in value]
        if isinstance(value, bytes):
            return f"<{len(value)} bytes>"
        return value


# The process's own: what the server learns from mount requests, what logs and the audit trail apply.
KNOWN_SECRETS = KnownSecrets()
REDACTOR = Redactor(KNOWN_SECRETS)


def redact_text(text: str) -> str:
    return REDACTOR.text(text)

