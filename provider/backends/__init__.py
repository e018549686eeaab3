"""The registry of backends, one socket each; the contract they keep is in provider/contract.py.

A backend package (`provider.backends.<name>`) exposes, at module level:

    declaration: Declaration                       # its parameters, fields, flags... as data
    def create(args: argparse.Namespace) -> Backend  # called once at start-up

and keeps its heavy imports (hvac, azure-*) inside `create` or the modules it calls, so a daemon that
serves only one backend never loads the other's libraries. A new backend is one package and one line
in BACKEND_MODULES; the core reaches backends only through this registry.
"""

from __future__ import annotations

import argparse
import importlib
from types import ModuleType
from typing import Any

from provider.contract import Backend, Declaration
from provider.errors import ErrorKind, ProviderError
from provider.files import SecretFile
from provider.findings import Findings
from provider.request import MountContext

# Backend name (also the socket name, `<provider-dir>/<name>.sock`) → module.
BACKEND_MODULES: dict[str, str] = {
    "vault": "provider.backends.vault",
    "azure": "provider.backends.azure",
}


class UnbuiltBackend:
    """Stands in for a backend whose package this build does not have: its socket still answers."""

    def __init__(self, name: str) -> None:
        self.declaration = Declaration(name)

    def check(self, ctx: MountContext, findings: Findings) -> None:
        findings.error(ProviderError(
            ErrorKind.UNIMPLEMENTED,
            f"the {self.declaration.name!r} backend is not part of this build of the provider",
        ))

    def fetch(self, plan: Any, deadline: float) -> list[SecretFile]:
        raise AssertionError("check always fails")


def backend_module(name: str) -> ModuleType | None:
    """The backend's package, or None when this build does not have it."""
    module_name = BACKEND_MODULES[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            return None
        raise
    # A directory without the entry points (e.g. a namespace package with no __init__) is not a backend.
    return module if isinstance(getattr(module, "declaration", None), Declaration) and hasattr(module, "create") \
        else None


def backend_declaration(name: str) -> Declaration | None:
    """What the backend declares, or None when this build does not have it."""
    module = backend_module(name)
    return None if module is None else module.declaration  # type: ignore[no-any-return]


def declarations() -> list[Declaration]:
    """The declarations of every backend this build has, in registry order."""
    return [d for d in map(backend_declaration, BACKEND_MODULES) if d is not None]


def add_backend_arguments(parser: argparse.ArgumentParser, policy_group: Any) -> None:
    """Each backend's flags in a group of its own; its policy flags into `policy_group`."""
    built = declarations()
    for declaration in built:
        for flag in declaration.policy_flags:
            flag.add_to(policy_group)
    for declaration in built:
        declaration.add_flags(parser.add_argument_group(f"{declaration.name} backend"))


def create_backend(name: str, args: argparse.Namespace) -> Backend[Any]:
    if name not in BACKEND_MODULES:
        raise ValueError(f"unknown backend {name!r}; known: {', '.join(sorted(BACKEND_MODULES))}")
    module = backend_module(name)
    if module is None:
        return UnbuiltBackend(name)
    backend: Backend[Any] = module.create(args)
    return backend
