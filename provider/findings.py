"""What one validation pass over a SecretProviderClass finds: errors and warnings, each with its object.

A backend checks an SPC once, collecting into `Findings`; a mount raises the first error (and logs the
warnings), `lint` reports every finding. So the two can never disagree about what is wrong.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from provider.errors import ProviderError

log = logging.getLogger(__name__)

ERROR = "error"
WARNING = "warning"
T = TypeVar("T")


@dataclass(frozen=True)
class Finding:
    """One problem: which object ('' for the SPC itself), how bad, what.

    `key` and `fields` are for logging a warning at mount time (once per SPC and key, with structured
    fields); they are not part of what `lint` prints.
    """

    object: str
    severity: str
    message: str
    key: str = field(default="", compare=False)
    fields: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)


class Findings:
    """Collects the findings of one pass; errors keep their ProviderError so a mount raises the first as it was."""

    def __init__(self) -> None:
        self.items: list[Finding] = []
        self._errors: list[ProviderError] = []

    def error(self, exc: ProviderError, obj: str = "") -> None:
        self.items.append(Finding(obj, ERROR, exc.message))
        self._errors.append(exc)

    def warn(self, message: str, obj: str = "", key: str = "", **fields: object) -> None:
        self.items.append(Finding(obj, WARNING, message, key or message, fields))

    def attempt(self, check: Callable[[], T], obj: str = "") -> T | None:
        """check(), or None after recording the ProviderError it raised."""
        try:
            return check()
        except ProviderError as exc:
            self.error(exc, obj)
            return None

    @property
    def error_count(self) -> int:
        return len(self._errors)

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.items if f.severity == WARNING]

    def raise_first(self) -> None:
        if self._errors:
            raise self._errors[0]


def checked(check: Callable[[Findings], T | None]) -> T:
    """What a collecting check returns, raising the first error it recorded: a mount's use of the pass."""
    findings = Findings()
    result = check(findings)
    findings.raise_first()
    assert result is not None, "a check that recorded no error returns its result"
    return result


def nearest(name: str, known: tuple[str, ...]) -> str:
    """The known name closest to a misspelt one ('' when none is close): `filePermision` → `filePermission`."""
    matches = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if not matches:
        matches = [k for k in known if k.lower() == name.lower()]
    return matches[0] if matches else ""


# Hashes of (SPC, key), not the strings: a key holds a field name an SPC chose, of any length.
_warned: set[int] = set()
_WARNED_LIMIT = 10_000


def warn_once(spc: str, key: str, message: str, fields: Mapping[str, object]) -> None:
    """Log a configuration warning once per SPC and key (bounded, so a churn of SPCs cannot grow it)."""
    seen = hash((spc, key))
    if seen in _warned:
        return
    if len(_warned) >= _WARNED_LIMIT:
        _warned.clear()
    _warned.add(seen)
    log.warning(message, extra={"fields": {"secretProviderClass": spc, **fields}})
