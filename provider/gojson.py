"""JSON as Go's encoding/json reads and writes it, for bytes that must equal the Go providers' and driver's.

Writing: compact, map keys sorted, `<`, `>` and `&` escaped, numbers exactly as they were read (a
JsonNumber) or as Go formats a float. Reading (`parse_json`): numbers kept as their text.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any


class JsonNumber(str):
    """A JSON number kept as the text Vault sent, like Go's json.Number (10 stays 10, 1.50 stays 1.50)."""


class RenderError(ValueError):
    """Why a value cannot be written; the caller adds the object and path. Never holds the value."""


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# One decoder for every answer, as json.loads keeps one for its defaults: json.loads with arguments builds
# a decoder and its scanner at every call.
_DECODER = json.JSONDecoder(parse_int=JsonNumber, parse_float=JsonNumber, parse_constant=_no_constant)


def parse_json(body: bytes) -> Any:
    """Vault's JSON answer with numbers kept as JsonNumber; raises ValueError when it is not JSON."""
    return _DECODER.decode(body.decode(json.detect_encoding(body), "surrogatepass"))  # what json.loads does


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f",
            "<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_NEEDS_ESCAPE = re.compile('["\\\\<>&\u2028\u2029\x00-\x1f\ud800-\udfff]')
_SURROGATE = re.compile("[\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if "\ud800" <= char <= "\udfff":
        return "\ufffd"  # Go decodes a lone surrogate escape to U+FFFD
    return _ESCAPES.get(char) or f"\\u{ord(char):04x}"


def go_text(text: str) -> str:
    """text with lone surrogates replaced by U+FFFD, as Go turns invalid UTF-8 into it."""
    return _SURROGATE.sub("\ufffd", text)


def go_string(text: str) -> str:
    return '"' + _NEEDS_ESCAPE.sub(_escape, text) + '"'


def go_float(value: float) -> str:
    """A float as Go's encoding/json writes it (shortest digits; exponent only below 1e-6 or from 1e21)."""
    if not math.isfinite(value):
        raise RenderError("NaN and infinite numbers cannot be written as JSON")
    if value == 0:
        return "0"
    text = repr(value)
    if 1e-6 <= abs(value) < 1e21:
        text = format(Decimal(text), "f")
        return text.rstrip("0").rstrip(".") if "." in text else text
    mantissa, _, exponent = text.partition("e")
    sign, digits = exponent[0], exponent[1:].lstrip("0") or "0"
    return f"{mantissa}e{sign}{digits}"


def go_json(value: Any) -> str:
    """JSON as Go's json.Marshal writes a decoded value (maps with sorted keys, compact)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, JsonNumber):
        return str(value)
    if isinstance(value, str):
        return go_string(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{go_string(str(k))}:{go_json(value[k])}" for k in sorted(value, key=str)) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(go_json(item) for item in value) + "]"
    raise RenderError(f"a {type(value).__name__} cannot be written as JSON")
