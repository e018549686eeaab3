"""Unknown SPC parameters and object fields: ignored, as by the official provider, but logged once per
SecretProviderClass with the nearest known name, so a typo does not go unnoticed."""

from __future__ import annotations

import difflib
import logging
from collections.abc import Mapping

log = logging.getLogger(__name__)

_warned: set[tuple[str, str]] = set()
_WARNED_LIMIT = 10_000


def warn_once(spc: str, key: str, message: str, fields: Mapping[str, object]) -> None:
    """Log a configuration warning once per SPC and key (bounded, so a churn of SPCs cannot grow it)."""
    if (spc, key) in _warned:
        return
    if len(_warned) >= _WARNED_LIMIT:
        _warned.clear()
    _warned.add((spc, key))
    log.warning(message, extra={"fields": {"secretProviderClass": spc, **fields}})


def nearest(name: str, known: tuple[str, ...]) -> str:
    matches = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if not matches:
        matches = [k for k in known if k.lower() == name.lower()]
    return matches[0] if matches else ""


def warn_unknown_parameters(params: Mapping[str, str], spc: str, known: tuple[str, ...],
                            ignored: tuple[str, ...]) -> None:
    """Parameters that look like a misspelt Vault parameter (the rest are other volume attributes)."""
    for name in params:
        if name in known:
            continue
        if name in ignored:
            warn_once(spc, name, f"SecretProviderClass {spc}: parameter {name!r} is ignored (as by the official "
                      "provider since 0.1.0)", {"parameter": name})
            continue
        guess = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
        if guess:
            warn_once(spc, name, f"SecretProviderClass {spc}: unknown parameter {name!r} is ignored; did you mean "
                      f"{guess[0]!r}?", {"parameter": name, "suggestion": guess[0]})
