"""The Backend protocol and the registry of backends, one socket each.

A backend package (`provider.backends.<name>`) exposes two module-level functions:

    def add_arguments(parser: argparse.ArgumentParser) -> None   # its daemon flags, e.g. --vault-addr
    def create(args: argparse.Namespace) -> Backend               # called once at start-up

and keeps its heavy imports (hvac, azure-*) inside `create` or the modules it calls, so a daemon that
serves only one backend never loads the other's libraries. A new backend is one package and one line
in BACKEND_MODULES.
"""

from __future__ import annotations

import argparse
import importlib
from types import ModuleType
from typing import Any, Protocol

from provider.errors import ErrorKind, ProviderError
from provider.files import SecretFile
from provider.request import MountContext

# Backend name (also the socket name, `<provider-dir>/<name>.sock`) → module.
BACKEND_MODULES: dict[str, str] = {
    "vault": "provider.backends.vault",
    "azure": "provider.backends.azure",
}


class Backend(Protocol):
    name: str

    def plan(self, ctx: MountContext) -> Any:
        """Parse and validate everything the mount needs, without I/O. Raises ProviderError."""
        ...

    def fetch(self, plan: Any, deadline: float) -> list[SecretFile]:
        """Read every object of the plan as the pod, before `deadline` (time.monotonic())."""
        ...


class UnbuiltBackend:
    """Stands in for a backend whose package this build does not have: its socket still answers."""

    def __init__(self, name: str) -> None:
        self.name = name

    def plan(self, ctx: MountContext) -> Any:
        raise ProviderError(
            ErrorKind.UNIMPLEMENTED,
            f"the {self.name!r} backend is not part of this build of the provider",
        )

    def fetch(self, plan: Any, deadline: float) -> list[SecretFile]:
        raise AssertionError("plan always fails")


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
    return module if hasattr(module, "create") and hasattr(module, "add_arguments") else None


def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    for name in BACKEND_MODULES:
        module = backend_module(name)
        if module is not None:
            module.add_arguments(parser.add_argument_group(f"{name} backend"))


def create_backend(name: str, args: argparse.Namespace) -> Backend:
    if name not in BACKEND_MODULES:
        raise ValueError(f"unknown backend {name!r}; known: {', '.join(sorted(BACKEND_MODULES))}")
    module = backend_module(name)
    if module is None:
        return UnbuiltBackend(name)
    backend: Backend = module.create(args)
    return backend
