"""The layers of docs/architecture.md, checked on the code: every import in provider/, read with `ast`
(including imports inside functions, which load lazily but still bind the layers)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROVIDER = ROOT / "provider"
# What a backend must never import: the server edge and the wire format, the command line, gRPC.
SERVER_SIDE = ("provider.server", "provider.wire", "provider._proto", "provider.cli", "provider.lint",
               "provider.localdriver", "provider.health", "provider.preflight", "provider.backends", "grpc",
               "grpc_health")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[str]:
    """Every module `path` imports, absolute (relative imports resolved against its package)."""
    tree = ast.parse(path.read_text(), str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found += [base] + [f"{base}.{alias.name}" for alias in node.names]
    return found


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def backend_of(module: str) -> str | None:
    """The backend package a module is part of (None for the core); a name imported from the registry
    (`from provider.backends import create_backend`) is not a package."""
    parts = module.split(".")
    if len(parts) > 2 and parts[:2] == ["provider", "backends"] and (PROVIDER / "backends" / parts[2]).is_dir():
        return parts[2]
    return None


SOURCES = sorted(p for p in PROVIDER.rglob("*.py") if "_proto" not in p.parts)
BACKEND_SOURCES = [p for p in SOURCES if backend_of(module_name(p))]
CORE_SOURCES = [p for p in SOURCES if not backend_of(module_name(p)) and module_name(p) != "provider.backends"]


def test_the_sources_are_found() -> None:
    assert {backend_of(module_name(p)) for p in BACKEND_SOURCES} == {"vault", "azure"}
    assert len(CORE_SOURCES) > 20


@pytest.mark.parametrize("path", BACKEND_SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_a_backend_imports_neither_the_server_side_nor_another_backend(path: Path) -> None:
    own = backend_of(module_name(path))
    for name in imports(path):
        other = backend_of(name)
        assert other in (None, own), f"{path.name} imports {name}: backends never import each other"
        if other is None:
            assert not any(within(name, edge) for edge in SERVER_SIDE), \
                f"{path.name} imports {name}: backends never import the server, gRPC, the registry or the CLI"


@pytest.mark.parametrize("path", CORE_SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_core_reaches_backends_only_through_the_registry(path: Path) -> None:
    for name in imports(path):
        assert backend_of(name) is None, f"{path.name} imports {name}: the core uses provider.backends (the registry)"


def test_only_the_server_edge_speaks_grpc() -> None:
    speaking = {module_name(p) for p in SOURCES if any(within(n, "grpc") or within(n, "provider._proto")
                                                      for n in imports(p))}
    assert speaking <= {"provider.server", "provider.wire", "provider.cli", "provider.localdriver",
                        "provider.health"}, speaking


def backend_flag_names() -> list[str]:
    """Every daemon and policy flag the backends declare, as written on the command line and as read from args."""
    from provider.backends import declarations

    return sorted({name for declaration in declarations() for flag in (*declaration.flags, *declaration.policy_flags)
                   for name in (flag.option, flag.dest)})


def test_the_backends_flags_are_found() -> None:
    names = backend_flag_names()
    assert {"--allowed-vault-addresses", "allowed_vault_addresses", "deny_node_identity", "vault_addr"} <= set(names)


@pytest.mark.parametrize("path", CORE_SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_core_names_no_backend_flag(path: Path) -> None:
    """A backend's flags are read in its own `create` (Declaration.flag_values); a core module that names
    one (say, reads `allowed_vault_addresses` with getattr) holds a backend fact."""
    text = path.read_text()
    named = [name for name in backend_flag_names() if re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text)]
    assert not named, f"{path.name} names {named}: backend flags belong to the backend's package"
