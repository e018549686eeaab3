"""docs/security.md and docs/faults.md name the tests that show each defence: those tests exist, and every
hardening test module is named in one of them."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "docs" / "security.md", ROOT / "docs" / "faults.md"]
REFERENCE = re.compile(r"(tests/[\w/]+\.py)(?:::(\w+))?")


def test_every_test_the_docs_name_exists() -> None:
    references = {ref for doc in DOCS for ref in REFERENCE.findall(doc.read_text())}
    assert len(references) > 30
    for path, name in sorted(references):
        source = ROOT / path
        assert source.is_file(), f"{path} does not exist"
        if name:
            assert re.search(rf"^def {name}\(", source.read_text(), re.MULTILINE), f"{path}::{name} does not exist"


def test_every_hardening_module_is_in_the_docs() -> None:
    named = {path for doc in DOCS for path, _ in REFERENCE.findall(doc.read_text())}
    modules = {str(p.relative_to(ROOT)) for p in (ROOT / "tests" / "hardening").glob("test_*.py")}
    assert modules - {"tests/hardening/test_security_doc.py"} <= named
