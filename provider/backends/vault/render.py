"""What is written to a file: a key's value (KV v2 `data.data`, else `data`), or the whole response.

Bytes match the official provider's: strings raw; other values as Go's encoding/json writes them
(compact, map keys sorted, numbers exactly as Vault sent them, `<`, `>`, `&` escaped); then `encoding`
decodes base64 or hex. `secretKey: "*"` renders every key that way, one file each. The whole-response
file keeps the official field order but leaves `request_id` empty: it changes on every read, and would
change the object's version on every rotation poll (hashicorp/vault-csi-provider#474).
"""

from __future__ import annotations

import base64
import binascii
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


def parse_json(body: bytes) -> Any:
    """Vault's JSON answer with numbers kept as JsonNumber; raises ValueError when it is not JSON."""
    return json.loads(body, parse_int=JsonNumber, parse_float=JsonNumber, parse_constant=_no_constant)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f",
            "<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_NEEDS_ESCAPE = re.compile('["\\\\<>&\u2028\u2029\x00-\x1f\ud800-\udfff]')
_SURROGATE = re.compile("[\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if "\ud800" <= char <= "\udfff":
        return "\ufffd"  # Go decodes a lone surrogate escape to U+FFFD
    return _ESCAPES.get(char) or f"\\u{ord(char):04x}"


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


def key_source(data: Mapping[str, Any]) -> Mapping[str, Any]:
    """Where keys are looked up: `data.data` when that is a map (KV v2), else `data` (KV v1, other engines)."""
    inner = data.get("data")
    return inner if isinstance(inner, Mapping) else data


def select_value(data: Mapping[str, Any], key: str) -> Any:
    """The value of key: in `data.data` when that is a map (KV v2), else in `data`. KeyError if absent."""
    source = key_source(data)
    if key not in source:
        raise KeyError(key)
    return source[key]


def render_value(value: Any) -> bytes:
    """A string as its raw bytes, anything else as compact JSON."""
    if isinstance(value, str) and not isinstance(value, JsonNumber):
        return _SURROGATE.sub("\ufffd", value).encode("utf-8")
    return go_json(value).encode("utf-8")


def decode(raw: bytes, encoding: str) -> bytes:
    """Decode a value the SPC says is base64 or hex; utf-8 is written as it is."""
    try:
        if encoding == "base64":
            # Go's StdEncoding: padding required, CR and LF ignored, nothing else.
            return base64.b64decode(raw.replace(b"\r", b"").replace(b"\n", b""), validate=True)
        if encoding == "hex":
            return binascii.unhexlify(raw)
    except (binascii.Error, ValueError) as exc:
        raise RenderError(f"the value is not valid {encoding} ({exc})") from None
    return raw


# The official provider writes api.Secret: these fields always, in this order, then the optional ones.
ENVELOPE = ("request_id", "lease_id", "lease_duration", "renewable", "data", "warnings")
OPTIONAL = ("auth", "wrap_info", "mount_type")


def whole_response(response: Mapping[str, Any]) -> bytes:
    """The whole response as the official provider writes it, with request_id left empty (see above)."""
    values: dict[str, Any] = {
        "request_id": "",
        "lease_id": response.get("lease_id") or "",
        "lease_duration": response.get("lease_duration") or 0,
        "renewable": bool(response.get("renewable")),
        "data": response.get("data"),
        "warnings": response.get("warnings"),
    }
    fields = [f"{go_string(k)}:{go_json(values[k])}" for k in ENVELOPE]
    fields += [f"{go_string(k)}:{go_json(response[k])}" for k in OPTIONAL if response.get(k)]
    return ("{" + ",".join(fields) + "}").encode("utf-8")


def render_object(response: Mapping[str, Any], secret_key: str, encoding: str) -> bytes:
    """The file for one object from its response. KeyError for a missing key, RenderError otherwise."""
    if not secret_key:
        return whole_response(response)
    data = response.get("data")
    if not isinstance(data, Mapping):
        raise KeyError(secret_key)
    return decode(render_value(select_value(data, secret_key)), encoding)


def render_keys(response: Mapping[str, Any], encoding: str) -> list[tuple[str, bytes]]:
    """Every key of the secret and its file's bytes, rendered like a secretKey value, sorted by key.

    RenderError names the key whose value cannot be decoded (never the value)."""
    data = response.get("data")
    if not isinstance(data, Mapping):
        raise RenderError("the response's data is not a map of keys")
    rendered = []
    for key in sorted(key_source(data), key=str):
        try:
            rendered.append((str(key), decode(render_value(key_source(data)[key]), encoding)))
        except RenderError as exc:
            raise RenderError(f"key {str(key)!r}: {exc}") from None
    return rendered
