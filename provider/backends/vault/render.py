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
from collections.abc import Mapping
from typing import Any

from provider.gojson import JsonNumber, RenderError, go_json, go_string, go_text


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
        return go_text(value).encode("utf-8")
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
