"""docs/<backend>.md's parameter and field tables are what the backends declare (provider/doctables.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from provider.backends import declarations
from provider.contract import Declaration
from provider.doctables import tables

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("declaration", declarations(), ids=lambda d: d.name)
def test_the_docs_tables_are_rendered_from_the_declaration(declaration: Declaration) -> None:
    text = (ROOT / "docs" / f"{declaration.name}.md").read_text()
    for table in tables(declaration):
        assert table in text, f"docs/{declaration.name}.md differs from the declaration; run tools/gen_doc_tables.py"


def test_every_known_parameter_is_documented_or_ignored() -> None:
    for declaration in declarations():
        rendered = "\n".join(tables(declaration))
        for parameter in declaration.parameters:
            assert parameter.ignored or f"`{parameter.name}`" in rendered
