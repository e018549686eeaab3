"""YAML read the way the official Vault provider's yaml.v3 reads it: the tree of an `objects` text, scalar
text as written, and values by the YAML 1.2 core schema (only true/false are booleans, `0600` is octal,
no timestamps), so request bodies built from `secretArgs` are the ones the official provider sends."""

from __future__ import annotations

import math
import re
from typing import Any

import yaml

from provider import spcyaml
from provider.errors import echo, invalid
from provider.textcache import TextSizedCache

_NULL = frozenset({"", "~", "null", "Null", "NULL"})
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_OCTAL_LEGACY = re.compile(r"^[-+]?0[0-7]+$")
_INT = re.compile(r"^[-+]?(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|[0-9]+)$")
_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
# No number an SPC means is written with more digits (and int() refuses thousands of them).
MAX_NUMBER_TEXT = 1000


# A tree takes about 50 times the bytes of its text. Only texts up to CACHED_TEXT_CHARS are kept (an SPC's
# objects text is a few hundred characters; one of a hundred objects is still under it), and all kept
# texts together stay under CACHE_TEXT_CHARS, so the cache holds at most about 15 MB of trees.
CACHED_TEXT_CHARS = 64 * 1024
CACHE_TEXT_CHARS = 256 * 1024


class TreeCache(TextSizedCache[str, "yaml.Node | None"]):
    """Trees of objects texts, least recently used first out, bounded by the size of the texts."""

    def __init__(self, max_text: int = CACHED_TEXT_CHARS, budget: int = CACHE_TEXT_CHARS) -> None:
        super().__init__(max_text, budget)

    def get(self, text: str) -> yaml.Node | None:
        kept = self.lookup(text)
        if kept is not None:
            return kept[0]
        node = spcyaml.compose(text)
        self.keep(text, node, len(text))
        return node


TREES = TreeCache()


def composed(text: str) -> yaml.Node | None:
    """The YAML tree of an objects text, kept when small: every rotation poll of a pod sends the same text, and
    composing ten objects costs about 1.5 ms of a mount. The tree is only read, never changed; errors are not
    kept. Aliases are held to spcyaml's budget."""
    return TREES.get(text)


def scalar_text(node: yaml.Node) -> str:
    """A scalar's text as written ("" for null); INVALID_ARGUMENT for a list or map where a name belongs."""
    if not isinstance(node, yaml.ScalarNode):
        raise invalid("a field name in 'objects' is not a plain string")
    return "" if node.tag.endswith(":null") else str(node.value)


def integer(plain: str) -> int | None:
    """An integer as yaml.v3 reads one (`0600` octal, `0o`/`0x`/`0b` prefixes, else decimal); None if not one."""
    if len(plain) > MAX_NUMBER_TEXT:
        return None
    if _OCTAL_LEGACY.match(plain):
        return int(plain, 8)
    if _INT.match(plain):
        return int(plain, 0) if not plain.lstrip("+-").isdigit() else int(plain, 10)
    return None


def core_value(node: yaml.Node, where: str) -> Any:
    """A YAML node as the YAML 1.2 core schema reads it (no `yes`/`on` booleans, no timestamps)."""
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = scalar_text(key_node)
            if key in result:
                raise invalid(f"{where}: secretArgs key {echo(key)} is given twice")
            result[key] = core_value(value_node, where)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [core_value(item, where) for item in node.value]
    text = str(node.value)
    if getattr(node, "style", None) is not None:  # quoted or block scalars are strings, whatever they look like
        return text
    return core_scalar(text, where)


def core_scalar(text: str, where: str) -> Any:
    plain = text.replace("_", "")
    if len(text) > MAX_NUMBER_TEXT and _INT.match(plain):
        raise invalid(f"{where}: a secretArgs number has more than {MAX_NUMBER_TEXT} digits; quote it to send text")
    if text in _NULL:
        return None
    if text in _BOOL:
        return _BOOL[text]
    number = integer(plain)
    if number is not None:
        return number
    if _FLOAT.match(plain):
        real = float(plain)
        if not math.isfinite(real):
            raise invalid(f"{where}: secretArgs value {echo(text)} is too large to be sent as a JSON number")
        return real
    if text.lower() in (".inf", "+.inf", "-.inf", ".nan"):
        raise invalid(f"{where}: secretArgs value {echo(text)} cannot be sent as JSON")
    return text
