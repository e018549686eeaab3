"""Unknown SPC parameters and object fields: ignored, as by the official provider, but reported (logged once
per SecretProviderClass at mount, listed by `lint`) with the nearest known name, so a typo does not go
unnoticed."""

from __future__ import annotations

from collections.abc import Mapping

from provider.findings import Findings, nearest
from provider.request import DRIVER_ADDED_KEYS
from provider.templates import TEMPLATES_PARAMETER


def unknown_parameters(params: Mapping[str, str], spc: str, known: tuple[str, ...], ignored: tuple[str, ...],
                       findings: Findings) -> None:
    """A warning for each parameter that is neither Vault's, the driver's nor the provider's (templates)."""
    for name in params:
        if name in known or name in DRIVER_ADDED_KEYS or name == TEMPLATES_PARAMETER:
            continue
        if name in ignored:
            findings.warn(f"SecretProviderClass {spc}: parameter {name!r} is ignored (as by the official provider "
                          "since 0.1.0)", key=name, parameter=name)
            continue
        guess = nearest(name, known)
        hint = f"; did you mean {guess!r}?" if guess else ""
        findings.warn(f"SecretProviderClass {spc}: unknown parameter {name!r} is ignored{hint}", key=name,
                      parameter=name, suggestion=guess)
