"""Write the parameter and object-field tables of docs/<backend>.md from the backends' declarations."""

from __future__ import annotations

from pathlib import Path

from provider.backends import declarations
from provider.doctables import replace_table, tables

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    for declaration in declarations():
        path = ROOT / "docs" / f"{declaration.name}.md"
        text = path.read_text()
        for table in tables(declaration):
            text = replace_table(text, table)
        path.write_text(text)
        print(f"wrote the tables of {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
