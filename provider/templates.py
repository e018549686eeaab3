"""Templated files: several objects rendered into one file (a .pgpass, a .env, an application.properties).

An SPC parameter `templates` holds a YAML list; each entry makes one more file from the files the backend
produced, referred to by their output path (Vault: objectName; Azure: objectAlias or objectName):

    templates: |
      - fileName: .pgpass
        filePermission: "0600"
        keepSources: false          # drop the files it used from the volume (default: keep them)
        template: |
          db.internal:5432:app:{{ db-username }}:{{ db-password }}

Inside `{{ }}`: a file path or a "quoted literal", then filters after `|`: trim, json (a JSON string,
quotes included), shell (single-quoted for sh), base64, base64decode, upper, lower. That is the whole
language: no code, no loops, no filesystem or environment access. A reference to a file no object
produced, an unknown filter or a `{{` left open is an error. SPCs without `templates` are untouched.
"""

from __future__ import annotations

import base64
import binascii
import collections
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import yaml

from provider import spcyaml
from provider.errors import ErrorKind, ProviderError, echo, invalid
from provider.files import SecretFile
from provider.limits import MAX_RESPONSE_BYTES, mode_in_range

TEMPLATES_PARAMETER = "templates"
ENTRY_FIELDS = ("fileName", "template", "filePermission", "keepSources")
_LITERAL = re.compile(r'^"((?:[^"\\]|\\.)*)"$')


def _text(value: bytes, filter_name: str) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"the {filter_name} filter needs UTF-8 text") from None


def _base64decode(value: bytes) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error:
        raise ValueError("the base64decode filter got text that is not base64") from None


FILTERS: dict[str, Callable[[bytes], bytes]] = {
    "trim": lambda v: v.strip(),
    "json": lambda v: json.dumps(_text(v, "json")).encode(),
    "shell": lambda v: ("'" + _text(v, "shell").replace("'", "'\\''") + "'").encode(),
    "base64": lambda v: base64.b64encode(v),
    "base64decode": _base64decode,
    "upper": lambda v: v.upper(),
    "lower": lambda v: v.lower(),
}


@dataclass(frozen=True)
class Expression:
    source: str  # a file path; "" for a literal
    literal: bytes | None
    filters: tuple[str, ...]


@dataclass(frozen=True)
class Template:
    file_name: str
    text: str
    parts: tuple[str | Expression, ...]
    mode: int | None
    keep_sources: bool

    @property
    def references(self) -> tuple[str, ...]:
        return tuple(p.source for p in self.parts if isinstance(p, Expression) and p.literal is None)


def parse_templates(parameters: Mapping[str, str]) -> tuple[Template, ...]:
    """The SPC's templates, checked without I/O; () when the parameter is absent."""
    raw = parameters.get(TEMPLATES_PARAMETER, "")
    if not raw.strip():
        return ()
    try:
        entries = spcyaml.load(raw)
    except RecursionError:
        raise invalid("templates nests deeper than any list of templates") from None
    except yaml.YAMLError as exc:
        raise invalid(f"templates is not valid YAML: {_yaml_problem(exc)}") from None
    if not isinstance(entries, list):
        raise invalid("templates must be a YAML list of {fileName, template, filePermission, keepSources}")
    templates = tuple(_parse_entry(entry, index) for index, entry in enumerate(entries))
    counts = collections.Counter(t.file_name for t in templates)
    duplicated = sorted(name for name, count in counts.items() if count > 1)
    if duplicated:
        raise invalid(f"templates: each fileName must be unique, but these repeat: {', '.join(duplicated)}")
    return templates


def _parse_entry(entry: object, index: int) -> Template:
    if not isinstance(entry, dict):
        raise invalid(f"templates[{index}] must be a mapping with fileName and template")
    unknown = sorted(set(map(str, entry)) - set(ENTRY_FIELDS))
    if unknown:
        raise invalid(f"templates[{index}]: unknown field {echo(unknown[0])}; the fields are {', '.join(ENTRY_FIELDS)}")
    name, text = entry.get("fileName"), entry.get("template")
    if not isinstance(name, str) or not name:
        raise invalid(f"templates[{index}]: fileName must be a non-empty string")
    if not isinstance(text, str):
        raise invalid(f"template {echo(name)}: template must be a string")
    keep = entry.get("keepSources", True)
    if not isinstance(keep, bool):
        raise invalid(f"template {echo(name)}: keepSources must be true or false")
    return Template(name, text, _parse_text(text, name), _mode(entry.get("filePermission"), name), keep)


def _mode(value: object, name: str) -> int | None:
    if value is None:
        return None
    try:
        mode = int(value, 8) if isinstance(value, str) else int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError):  # OverflowError: .inf
        raise invalid(f"template {echo(name)}: filePermission {echo(value)} is not an octal mode such as "
                      "\"0600\"") from None
    if not mode_in_range(mode):
        raise invalid(f"template {echo(name)}: filePermission {echo(value)} is outside 0000..0777")
    return mode


def _parse_text(text: str, name: str) -> tuple[str | Expression, ...]:
    parts: list[str | Expression] = []
    position = 0
    while (start := text.find("{{", position)) != -1:
        end = _closing_braces(text, start + 2)
        if end == -1:
            raise invalid(f"template {echo(name)}: a '{{{{' is not closed by '}}}}'")
        parts += [text[position:start], _parse_expression(text[start + 2:end], name)]
        position = end + 2
    parts.append(text[position:])
    return tuple(p for p in parts if p != "")


def _closing_braces(text: str, index: int) -> int:
    """Index of the `}}` that closes an expression, skipping over "quoted literals"; -1 if none."""
    quoted = False
    while index < len(text):
        char = text[index]
        if quoted and char == "\\":
            index += 2
            continue
        if char == '"':
            quoted = not quoted
        elif not quoted and text.startswith("}}", index):
            return index
        index += 1
    return -1


def _parse_expression(body: str, name: str) -> Expression:
    head, *filters = [piece.strip() for piece in body.split("|")] if '"' not in body else _split_literal(body)
    if not head:
        raise invalid(f"template {echo(name)}: an empty '{{{{ }}}}'")
    for item in filters:
        if item not in FILTERS:
            raise invalid(f"template {echo(name)}: unknown filter {echo(item)}; the filters are {', '.join(FILTERS)}")
    literal = _LITERAL.match(head)
    if literal:
        return Expression("", json.loads(f'"{literal.group(1)}"').encode(), tuple(filters))
    if any(c.isspace() for c in head) or '"' in head:
        raise invalid(f"template {echo(name)}: {echo(head)} is neither a file name nor a \"quoted literal\"")
    return Expression(head, None, tuple(filters))


def _split_literal(body: str) -> list[str]:
    """Split `"a|b" | trim` on the pipes outside the quoted literal."""
    body = body.strip()
    literal = re.match(r'"(?:[^"\\]|\\.)*"', body)
    if not literal:
        return [body]
    rest = body[literal.end():].strip()
    filters = [piece.strip() for piece in rest.split("|")[1:]] if rest.startswith("|") else ([rest] if rest else [])
    return [literal.group(0), *filters]


def apply_templates(templates: Sequence[Template], files: Sequence[SecretFile]) -> list[SecretFile]:
    """files plus one file per template; the sources of templates with keepSources: false removed."""
    if not templates:
        return list(files)
    by_path = {f.path: f for f in files}
    budget = _OutputBudget(MAX_RESPONSE_BYTES)
    rendered = [_render(t, by_path, budget) for t in templates]
    dropped = {ref for t in templates if not t.keep_sources for ref in t.references}
    return [f for f in files if f.path not in dropped] + rendered


class _OutputBudget:
    """The bytes every template of a mount may write together: no more than the driver can receive at all.

    Checked after each filter and each piece appended, so a chain of filters that doubles a value each time
    (60 `base64` make 617 MB of 5 bytes) stops one step past the limit instead of at the end."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def check(self, template: Template, size: int, what: str) -> None:
        if self.used + size > self.limit:
            raise ProviderError(ErrorKind.RESOURCE_EXHAUSTED,
                                f"template {echo(template.file_name)} grows past the driver's {self.limit}-byte limit "
                                f"for a whole mount at {what}; templates cannot produce more than that")


def _render(template: Template, by_path: Mapping[str, SecretFile], budget: _OutputBudget) -> SecretFile:
    out = bytearray()
    for part in template.parts:
        if isinstance(part, str):
            out += part.encode()
            budget.check(template, len(out), "its text")
            continue
        if part.literal is not None:
            value = part.literal
        elif part.source in by_path:
            value = by_path[part.source].contents
        else:
            known = ", ".join(sorted(by_path)) or "none"
            raise invalid(f"template {echo(template.file_name)} refers to {echo(part.source)}, which no object "
                          f"produced (the files are: {known})")
        for name in part.filters:
            try:
                value = FILTERS[name](value)
            except ValueError as exc:
                raise invalid(f"template {echo(template.file_name)}, {part.source or 'literal'}: {exc}") from None
            budget.check(template, len(out) + len(value), f"'{part.source or 'literal'} | {name}'")
        out += value
        budget.check(template, len(out), repr(part.source or "literal"))
    budget.used += len(out)
    return SecretFile(
        path=template.file_name,
        contents=bytes(out),
        object_id=f"template/{template.file_name}",
        object_spec=json.dumps({"template": template.text, "fileName": template.file_name}, sort_keys=True),
        mode=template.mode,
    )


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or "syntax error"
    return f"{problem} at line {mark.line + 1}" if mark is not None else str(problem)

