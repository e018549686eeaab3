"""The parameter and object-field tables of docs/<backend>.md, rendered from the backend's declaration.

A test renders them and fails when the docs differ; `tools/gen_doc_tables.py` writes them into the docs.
"""

from __future__ import annotations

from collections.abc import Sequence

from provider.contract import Declaration, ObjectField, Parameter


def _row(cells: Sequence[str]) -> str:
    return "|" + "|".join(f" {cell} " if cell else " " for cell in cells) + "|"


def _table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    return "\n".join([_row(columns), "|" + "|".join("---" for _ in columns) + "|", *map(_row, rows)])


def _parameter_cell(declaration: Declaration, parameter: Parameter, column: str) -> str:
    if column == "Parameter":
        shared = [p.name for p in declaration.parameters if p.row_of == parameter.name]
        return ", ".join(f"`{name}`" for name in (parameter.name, *shared))
    if column == "Required":
        return "yes" if parameter.required else ""
    if column == "Default":
        required_elsewhere = "Required" in declaration.parameter_columns
        return parameter.default or ("required" if parameter.required and not required_elsewhere else "")
    if column == "Meaning":
        return parameter.doc
    if column == "Example":
        return parameter.example
    raise ValueError(f"no parameter column {column!r}")


def _field_cell(field: ObjectField, column: str) -> str:
    return {"Field": f"`{field.name}`", "Default": field.default, "Meaning": field.doc}[column]


def parameter_table(declaration: Declaration) -> str:
    """Every documented parameter (not the ignored ones, nor those shown in another's row), in order."""
    shown = [p for p in declaration.parameters if not p.ignored and not p.row_of]
    columns = declaration.parameter_columns
    return _table(columns, [[_parameter_cell(declaration, p, c) for c in columns] for p in shown])


def field_table(declaration: Declaration) -> str:
    columns = declaration.field_columns
    return _table(columns, [[_field_cell(f, c) for c in columns] for f in declaration.object_fields])


def tables(declaration: Declaration) -> list[str]:
    return [parameter_table(declaration), field_table(declaration)]


def replace_table(text: str, table: str) -> str:
    """text with the table that has the same header line replaced by `table`."""
    header = table.split("\n", 1)[0]
    lines = text.split("\n")
    start = lines.index(header)
    end = start
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    return "\n".join([*lines[:start], table, *lines[end:]])
