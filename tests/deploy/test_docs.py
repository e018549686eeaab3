"""The operator docs stay true to the code: flags exist, links resolve, every error kind and every error
message the provider can return is explained in docs/troubleshooting.md."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

from provider.audit import AuditLog
from provider.cli import build_parser
from provider.errors import ErrorKind
from tests.deploy.manifests import DEPLOY, ROOT

DOCS = ROOT / "docs"
OPERATOR_DOCS = [DOCS / n for n in ("install.md", "csidriver.md", "metrics.md", "audit.md", "logging.md",
                                     "troubleshooting.md")] + [DEPLOY / "examples" / "README.md"]
TROUBLESHOOTING = DOCS / "troubleshooting.md"


def _serve_flags() -> set[str]:
    serve = build_parser()._subparsers._group_actions[0].choices["serve"]  # type: ignore[union-attr]
    return {flag for action in serve._actions for flag in action.option_strings}


def test_flags_named_in_the_install_and_daemonset_exist() -> None:
    install = (DOCS / "install.md").read_text()
    documented = set(re.findall(r"^\| `(--[a-z-]+)", install, flags=re.MULTILINE))
    daemonset = set(re.findall(r"^\s*(?:# )?- (--[a-z-]+)", (DEPLOY / "daemonset.yaml").read_text(), re.MULTILINE))
    assert documented and daemonset
    # `--vault-tls-*` in the table stands for the family of TLS flags.
    named = {f for f in documented | daemonset if not f.endswith("-")}
    assert named - _serve_flags() == set()
    assert any(f.startswith("--vault-tls-") for f in _serve_flags())


def test_audit_rotation_in_the_docs_is_the_code_default() -> None:
    defaults = inspect.signature(AuditLog).parameters
    max_mib = defaults["max_bytes"].default // (1024 * 1024)
    backups = defaults["backups"].default
    audit = (DOCS / "audit.md").read_text()
    assert f"at {max_mib} MiB" in audit
    assert f"up to `.{backups}`" in audit


@pytest.mark.parametrize("doc", ["metrics.md", "audit.md", "troubleshooting.md"])
def test_every_error_kind_is_documented(doc: str) -> None:
    text = (DOCS / doc).read_text()
    for kind in ErrorKind:
        assert f"`{kind.value}`" in text, f"{doc} does not name error kind {kind.value}"


@pytest.mark.parametrize("doc", OPERATOR_DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(doc: Path) -> None:
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", doc.read_text()):
        assert (doc.parent / target).exists(), f"{doc.name} links to {target}, which does not exist"


def _anchors(doc: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+ (.+)$", doc.read_text(), flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_links_into_the_operator_docs_name_real_sections() -> None:
    checked = 0
    for doc in sorted(DOCS.glob("*.md")):
        for target, anchor in re.findall(r"\]\(([^)#:]*)#([^)]+)\)", doc.read_text()):
            page = doc.parent / target if target else doc
            if page in OPERATOR_DOCS:
                assert anchor in _anchors(page), f"{doc.name} links to {target}#{anchor}, which has no such section"
                checked += 1
    assert checked, "no section links to check"


# Callables whose argument at this index is an error message that reaches the user.
MESSAGE_ARGUMENT = {"ProviderError": 1, "invalid": 0, "ContentError": 0, "MaterialError": 0, "RenderError": 0,
                    "StartupError": 0}


def _message_fragments() -> dict[str, list[str]]:
    """For each error message written in provider/ (ProviderError, invalid, and the backends' value errors that
    become a ProviderError's message), its literal parts of 12+ characters."""
    found: dict[str, list[str]] = {}
    for path in sorted((ROOT / "provider").rglob("*.py")):
        if "_proto" in path.parts:
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
            index = MESSAGE_ARGUMENT.get(name)
            if index is None or len(node.args) <= index:
                continue
            message = node.args[index]
            parts = [message] if isinstance(message, ast.Constant) else getattr(message, "values", [])
            literals = [p.value for p in parts if isinstance(p, ast.Constant) and isinstance(p.value, str)]
            fragments = [s for s in (lit.strip(" :;,.()'\"") for lit in literals) if len(s) >= 12]
            if fragments:
                found[f"{path.relative_to(ROOT)}:{node.lineno}"] = fragments
    return found


def test_every_error_message_is_in_troubleshooting() -> None:
    # Tables escape '|' as '\\|'; compare the text as a reader sees it.
    text = " ".join(TROUBLESHOOTING.read_text().replace("\\|", "|").split())
    fragments = _message_fragments()
    assert len(fragments) > 20
    missing = {
        where: [f for f in parts if " ".join(f.split()) not in text]
        for where, parts in fragments.items()
    }
    missing = {where: parts for where, parts in missing.items() if parts}
    assert not missing, "docs/troubleshooting.md does not explain these messages: " + repr(missing)


def test_endpoint_limits_in_the_docs_are_the_code_defaults() -> None:
    from provider import health

    text = " ".join((DOCS / "metrics.md").read_text().split())
    assert f"{health.HEAD_SECONDS:g} seconds from connecting" in text
    assert f"up to {health.MAX_HEAD_BYTES // 1024} KiB" in text
    assert f"at most {health.MAX_CONNECTIONS} connections per endpoint" in text
    assert {2: "two"}[health.ANSWER_THREADS] + " threads per endpoint" in text
