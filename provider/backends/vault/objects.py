"""The `objects` parameter: a YAML list of objects, read the way the official provider's yaml.v3 reads it.

String fields take the scalar's text as written (`secretKey: 0600` is the key "0600", `yes` stays "yes"),
`filePermission` takes octal (`0600`, `0o600`) or decimal, and `secretArgs` values follow the YAML 1.2
core schema (only true/false are booleans), so the request body is what the official provider sends.
Every object also gets its Vault request here, so a bad path or query fails before any I/O.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

import yaml

from provider.backends.vault.render import go_json
from provider.errors import invalid
from provider.output import path_problem

FIELDS = ("objectName", "secretPath", "secretKey", "method", "secretArgs", "encoding", "filePermission")
STRING_FIELDS = ("objectName", "secretPath", "secretKey", "method", "encoding")
ENCODINGS = ("utf-8", "base64", "hex")
METHODS = ("GET", "LIST", "POST", "PUT", "PATCH")
MAX_MODE = 0o777
# Fields of old releases, and what became of them (CHANGELOG 0.1.0 and 1.0.0).
HISTORIC = {"objectPath": "secretPath", "objectVersion": "", "objectType": "", "objectAlias": "objectName"}

_NULL = frozenset({"", "~", "null", "Null", "NULL"})
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_OCTAL_LEGACY = re.compile(r"^[-+]?0[0-7]+$")
_INT = re.compile(r"^[-+]?(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|[0-9]+)$")
_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


@dataclass(frozen=True)
class ReadRequest:
    """One Vault API call; objects with equal requests share one call per mount."""

    path: str  # always starts with /v1/
    params: tuple[tuple[str, str], ...] = ()
    method: str = "GET"
    body: str | None = None  # the JSON of secretArgs, or None

    def describe(self) -> str:
        query = f"?{urlencode(self.params)}" if self.params else ""
        return f"{self.method} {self.path}{query}"


@dataclass(frozen=True)
class VaultObject:
    name: str
    secret_path: str  # as the SPC wrote it, for messages
    request: ReadRequest
    secret_key: str = ""
    encoding: str = "utf-8"
    mode: int | None = None
    spec: str = ""  # canonical JSON of the fields as given: hashed into the version
    unknown_fields: tuple[str, ...] = field(default=(), compare=False)


def parse_objects(text: str, spc: str) -> tuple[VaultObject, ...]:
    """Parse and check the objects list; raises INVALID_ARGUMENT naming the object and field."""
    root = _compose(text, spc)
    if root is None:
        raise invalid(f"SecretProviderClass {spc}: no secrets configured - the provider will not read any secret "
                      "material; list them under 'objects'")
    if isinstance(root, yaml.MappingNode) and any(_text(k) == "array" for k, _ in root.value):
        raise invalid(f"SecretProviderClass {spc}: 'objects' uses the 'array:' wrapper removed in 0.1.0; "
                      "list the objects directly")
    if not isinstance(root, yaml.SequenceNode):
        raise invalid(f"SecretProviderClass {spc}: 'objects' must be a YAML list of objects (lines starting '- ')")
    if not root.value:
        raise invalid(f"SecretProviderClass {spc}: 'objects' is an empty list; list at least one object")
    objects = tuple(_parse_object(node, index + 1) for index, node in enumerate(root.value))
    names = [o.name for o in objects]
    duplicated = [n for i, n in enumerate(names) if n in names[:i]]
    if duplicated:
        raise invalid(f"SecretProviderClass {spc}: each `objectName` within a SecretProviderClass must be unique, "
                      f"but the following keys were duplicated: {', '.join(duplicated)}")
    return objects


def _compose(text: str, spc: str) -> yaml.Node | None:
    if not text.strip():
        return None
    try:
        node: yaml.Node | None = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise invalid(f"SecretProviderClass {spc}: 'objects' is not valid YAML: {problem}{where}") from None
    if isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null"):
        return None
    return node


def _parse_object(node: yaml.Node, index: int) -> VaultObject:
    where = f"object #{index}"
    if not isinstance(node, yaml.MappingNode):
        raise invalid(f"{where} must be a mapping with objectName, secretPath and secretKey")
    given: dict[str, yaml.Node] = {}
    for key_node, value_node in node.value:
        key = _text(key_node)
        if key in given:
            raise invalid(f"{where}: field {key!r} is given twice")
        given[key] = value_node
    name = _string(given, "objectName", where)
    if not name:
        raise invalid(f"{where} has no objectName; it names the file in the mount")
    where = f"object {name!r}"
    problem = path_problem(name)
    if problem:
        raise invalid(f"{where}: objectName {problem}; it is the file's path in the mount")
    secret_path = _string(given, "secretPath", where)
    if not secret_path:
        hint = " (objectPath was renamed secretPath in 0.1.0)" if "objectPath" in given else ""
        raise invalid(f"{where} has no secretPath{hint}; give the Vault API path, e.g. secret/data/app")
    method = _string(given, "method", where).upper() or "GET"
    if method not in METHODS:
        raise invalid(f"{where}: method {method!r} is not supported; use one of {', '.join(METHODS)}")
    args = _secret_args(given.get("secretArgs"), where)
    encoding = _string(given, "encoding", where).lower() or "utf-8"
    if encoding not in ENCODINGS:
        raise invalid(f"{where}: invalid encoding type {encoding!r}. Should be utf-8, base64, or hex")
    mode = _mode(given.get("filePermission"), where)
    spec_fields: dict[str, Any] = {k: _string(given, k, where) for k in STRING_FIELDS if k in given}
    if "secretArgs" in given:
        spec_fields["secretArgs"] = args
    if "filePermission" in given:
        spec_fields["filePermission"] = mode
    return VaultObject(
        name=name,
        secret_path=secret_path,
        request=build_request(secret_path, method, args, where),
        secret_key=_string(given, "secretKey", where),
        encoding=encoding,
        mode=mode,
        spec=json.dumps(spec_fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False),
        unknown_fields=tuple(k for k in given if k not in FIELDS),
    )


def build_request(secret_path: str, method: str, args: dict[str, Any] | None, where: str) -> ReadRequest:
    """The Vault call for a secretPath: /v1/ prefix, query string → parameters, secretArgs → JSON body."""
    path, _, query = secret_path.partition("?")
    if ";" in query or _BAD_ESCAPE.search(query):
        raise invalid(f"{where}: failed to parse query parameters from secretPath {secret_path!r}: use "
                      "key=value pairs joined by '&', with %XX escapes")
    params = sorted(parse_qsl(query, keep_blank_values=True), key=lambda pair: pair[0])
    return ReadRequest(
        path=ensure_v1_prefix(path),
        params=tuple(params),
        method=method,
        body=None if args is None else go_json(args),
    )


def ensure_v1_prefix(path: str) -> str:
    if path.startswith("/v1/"):
        return path
    if path.startswith("v1/"):
        return "/" + path
    return "/v1" + path if path.startswith("/") else "/v1/" + path


def _text(node: yaml.Node) -> str:
    if not isinstance(node, yaml.ScalarNode):
        raise invalid("a field name in 'objects' is not a plain string")
    return "" if node.tag.endswith(":null") else str(node.value)


def _string(given: dict[str, yaml.Node], name: str, where: str) -> str:
    node = given.get(name)
    if node is None:
        return ""
    if not isinstance(node, yaml.ScalarNode):
        shape = "list" if isinstance(node, yaml.SequenceNode) else "map"
        raise invalid(f"{where}: {name} must be a string, not a {shape}")
    return _text(node).strip() if name != "secretKey" else _text(node)


def _mode(node: yaml.Node | None, where: str) -> int | None:
    if node is None or (isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null")):
        return None
    text = _text(node).strip().replace("_", "") if isinstance(node, yaml.ScalarNode) else ""
    if _OCTAL_LEGACY.match(text):
        value = int(text, 8)
    elif _INT.match(text):
        value = int(text, 0) if not text.lstrip("+-").isdigit() else int(text, 10)
    else:
        raise invalid(f"{where}: filePermission must be a file mode in octal like 0600 (or decimal like 384)")
    if not 0 <= value <= MAX_MODE:
        raise invalid(f"{where}: filePermission {value:#o} is outside the file mode range 0..0777")
    return value or None


def _secret_args(node: yaml.Node | None, where: str) -> dict[str, Any] | None:
    if node is None or (isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null")):
        return None
    if not isinstance(node, yaml.MappingNode):
        raise invalid(f"{where}: secretArgs must be a map of request body fields, e.g. common_name: app.example.com")
    value = _core_value(node, where)
    assert isinstance(value, dict)
    return value


def _core_value(node: yaml.Node, where: str) -> Any:
    """A YAML node as the YAML 1.2 core schema reads it (no `yes`/`on` booleans, no timestamps)."""
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = _text(key_node)
            if key in result:
                raise invalid(f"{where}: secretArgs key {key!r} is given twice")
            result[key] = _core_value(value_node, where)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_core_value(item, where) for item in node.value]
    text = str(node.value)
    if node.style is not None:  # quoted or block scalars are strings, whatever they look like
        return text
    return _core_scalar(text, where)


def _core_scalar(text: str, where: str) -> Any:
    if text in _NULL:
        return None
    if text in _BOOL:
        return _BOOL[text]
    plain = text.replace("_", "")
    if _OCTAL_LEGACY.match(plain):
        return int(plain, 8)
    if _INT.match(plain):
        return int(plain, 0) if not plain.lstrip("+-").isdigit() else int(plain, 10)
    if _FLOAT.match(plain):
        return float(plain)
    if text.lower() in (".inf", "+.inf", "-.inf", ".nan"):
        raise invalid(f"{where}: secretArgs value {text!r} cannot be sent as JSON")
    return text
