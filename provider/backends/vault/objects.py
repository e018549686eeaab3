"""The `objects` parameter: a YAML list of objects, read the way the official provider's yaml.v3 reads it.

String fields take the scalar's text as written (`secretKey: 0600` is the key "0600", `yes` stays "yes"),
`filePermission` takes octal (`0600`, `0o600`) or decimal, and `secretArgs` values follow the YAML 1.2
core schema (only true/false are booleans), so the request body is what the official provider sends.
Every object also gets its Vault request here, so a bad path or query fails before any I/O. One pass
checks every object and records each problem (`check_objects`); a mount raises the first, `lint` shows all.
`secretKey: "*"` asks for every key of the secret as its own file under the directory `objectName`.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

import yaml

from provider.backends.vault.declaration import DECLARATION
from provider.backends.vault.yamlcore import (
    CACHE_TEXT_CHARS,
    CACHED_TEXT_CHARS,
    composed,
    core_value,
    integer,
    scalar_text,
)
from provider.errors import ProviderError, echo, invalid
from provider.findings import Finding, Findings, checked
from provider.gojson import go_json
from provider.limits import check_object_count, mode_in_range
from provider.paths import PathClaim, path_clashes, path_problem
from provider.plainurl import has_dot_segment
from provider.textcache import TextSizedCache

FIELDS = DECLARATION.field_names
STRING_FIELDS = ("objectName", "secretPath", "secretKey", "method", "encoding")
ENCODINGS = ("utf-8", "base64", "hex")
METHODS = ("GET", "LIST", "POST", "PUT", "PATCH")
# secretKey "*": every key of the secret, each in its own file under the directory <objectName>/.
ALL_KEYS = "*"

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

    @property
    def per_key(self) -> bool:
        """One file per key of the secret, under the directory objectName."""
        return self.secret_key == ALL_KEYS


def parse_objects(text: str, spc: str) -> tuple[VaultObject, ...]:
    """Parse and check the objects list; raises the first INVALID_ARGUMENT, naming the object and field."""
    return checked(lambda findings: check_objects(text, spc, findings))


class CheckedObjects(TextSizedCache[tuple[str, str], tuple[tuple[VaultObject, ...], tuple[Finding, ...]]]):
    """The objects of texts that checked without an error, and the warnings they gave, by (SPC label, text):
    every rotation poll of a pod sends the same text, and checking ten objects cost about 0.2 ms of CPU a
    mount. The result depends on nothing else (no pod, no token, no flag). Bounded as the trees are: only
    texts up to CACHED_TEXT_CHARS, all kept texts together under CACHE_TEXT_CHARS, least recently used out."""

    def __init__(self, max_text: int = CACHED_TEXT_CHARS, budget: int = CACHE_TEXT_CHARS) -> None:
        super().__init__(max_text, budget)

    def check(self, text: str, spc: str, findings: Findings) -> tuple[VaultObject, ...]:
        kept = self.lookup((spc, text))
        if kept is not None:
            objects, warnings = kept[0]
            for warning in warnings:
                findings.warn(warning.message, warning.object, warning.key, **warning.fields)
            return objects
        items, errors = len(findings.items), findings.error_count
        objects = _check_objects(text, spc, findings)
        if findings.error_count == errors:
            self.keep((spc, text), (objects, tuple(findings.items[items:])), len(text) + len(spc))
        return objects


CHECKED = CheckedObjects()


def check_objects(text: str, spc: str, findings: Findings) -> tuple[VaultObject, ...]:
    """The valid objects; every problem recorded in `findings` with its object, unknown fields as warnings."""
    return CHECKED.check(text, spc, findings)


def _check_objects(text: str, spc: str, findings: Findings) -> tuple[VaultObject, ...]:
    try:
        nodes = _object_nodes(_compose(text, spc), spc)
    except ProviderError as exc:
        findings.error(exc)
        return ()
    checked = [_check_object(node, index + 1, spc, findings) for index, node in enumerate(nodes)]
    seen: set[str] = set()
    duplicated: list[str] = []
    for name, _ in checked:  # in one pass: a thousand names must not cost a million comparisons
        if name and name in seen:
            duplicated.append(name)
        seen.add(name)
    if duplicated:
        findings.error(invalid(f"SecretProviderClass {spc}: each `objectName` within a SecretProviderClass must be "
                               f"unique, but the following keys were duplicated: {', '.join(duplicated)}"),
                       duplicated[0])
    objects = tuple(obj for _, obj in checked if obj is not None)
    _check_directories(objects, findings)
    return objects


def _object_nodes(root: yaml.Node | None, spc: str) -> list[yaml.Node]:
    if root is None:
        raise invalid(f"SecretProviderClass {spc}: no secrets configured - the provider will not read any secret "
                      "material; list them under 'objects'")
    if isinstance(root, yaml.MappingNode) and any(scalar_text(k) == "array" for k, _ in root.value):
        raise invalid(f"SecretProviderClass {spc}: 'objects' uses the 'array:' wrapper removed in 0.1.0; "
                      "list the objects directly")
    if not isinstance(root, yaml.SequenceNode):
        raise invalid(f"SecretProviderClass {spc}: 'objects' must be a YAML list of objects (lines starting '- ')")
    if not root.value:
        raise invalid(f"SecretProviderClass {spc}: 'objects' is an empty list; list at least one object")
    check_object_count(len(root.value), f"SecretProviderClass {spc}: 'objects'")
    return list(root.value)


def _check_directories(objects: tuple[VaultObject, ...], findings: Findings) -> None:
    """No object's file where another object needs a directory (`a` and `a/b`); per-key objects are directories
    that may hold other objects' files. Duplicate names are reported on their own, above."""
    for clash in path_clashes(PathClaim(o.name, o, directory=o.per_key) for o in objects):
        if clash.duplicate or clash.holder.directory:
            continue
        parent, obj = clash.holder.owner, clash.claim.owner
        findings.error(invalid(f"object {echo(parent.name)} writes the file {echo(parent.name)}, but object "
                               f"{echo(obj.name)} needs {echo(parent.name)} to be a directory"), obj.name)


def _compose(text: str, spc: str) -> yaml.Node | None:
    if not text.strip():
        return None
    try:
        node = composed(text)
    except RecursionError:
        raise invalid(f"SecretProviderClass {spc}: 'objects' nests deeper than any object description") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise invalid(f"SecretProviderClass {spc}: 'objects' is not valid YAML: {problem}{where}") from None
    if isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null"):
        return None
    return node


def _check_object(node: yaml.Node, index: int, spc: str, findings: Findings) -> tuple[str, VaultObject | None]:
    """(its objectName if usable, the object if it has no problem); each problem goes into `findings`.

    The checks run in a fixed order, so a mount's error is the first problem of the first bad object.
    """
    where, label = f"object #{index}", f"#{index}"
    if not isinstance(node, yaml.MappingNode):
        findings.error(invalid(f"{where} must be a mapping with objectName, secretPath and secretKey"), label)
        return "", None
    before = findings.error_count
    given: dict[str, yaml.Node] = {}
    for key_node, value_node in node.value:
        key = findings.attempt(functools.partial(scalar_text, key_node), label)
        if key is not None and key in given:
            findings.error(invalid(f"{where}: field {echo(key)} is given twice"), label)
        elif key is not None:
            given[key] = value_node

    def text_of(name: str) -> str | None:
        return findings.attempt(lambda: _string(given, name, where), label)

    name = text_of("objectName")
    if name == "":
        findings.error(invalid(f"{where} has no objectName; it names the file in the mount"), label)
    elif name is not None:
        where, label = f"object {echo(name)}", name
        problem = path_problem(name)
        if problem:
            findings.error(invalid(f"{where}: objectName {problem}; it is the file's path in the mount"), label)
            name = None
    secret_path = text_of("secretPath")
    if secret_path == "":
        hint = " (objectPath was renamed secretPath in 0.1.0)" if "objectPath" in given else ""
        findings.error(invalid(f"{where} has no secretPath{hint}; give the Vault API path, e.g. secret/data/app"),
                       label)
    method_text = text_of("method")
    method = (method_text or "").upper() or "GET"
    if method_text is not None and method not in METHODS:
        findings.error(invalid(f"{where}: method {echo(method)} is not supported; use one of {', '.join(METHODS)}"),
                       label)
    args = findings.attempt(lambda: _secret_args(given.get("secretArgs"), where), label)
    encoding_text = text_of("encoding")
    encoding = (encoding_text or "").lower() or "utf-8"
    if encoding_text is not None and encoding not in ENCODINGS:
        findings.error(invalid(f"{where}: invalid encoding type {echo(encoding)}. Should be utf-8, base64, or hex"),
                       label)
    mode = findings.attempt(lambda: _mode(given.get("filePermission"), where), label)
    secret_key = text_of("secretKey")
    request = findings.attempt(lambda: build_request(secret_path, method, args, where), label) if secret_path else None
    _warn_unknown_fields(given, label, spc, findings)
    if encoding in ENCODINGS and encoding != "utf-8" and secret_key == "":
        findings.warn(f"encoding of object {echo(label)} is ignored: it has no secretKey, so the whole response "
                      "is written", label, key=f"encoding {label}", object=label)
    if findings.error_count > before or name is None or secret_path is None or secret_key is None or request is None:
        return name or "", None
    spec_fields: dict[str, Any] = {k: _string(given, k, where) for k in STRING_FIELDS if k in given}
    if "secretArgs" in given:
        spec_fields["secretArgs"] = args
    if "filePermission" in given:
        spec_fields["filePermission"] = mode
    return name, VaultObject(
        name=name,
        secret_path=secret_path,
        request=request,
        secret_key=secret_key,
        encoding=encoding,
        mode=mode,
        spec=json.dumps(spec_fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False),
        unknown_fields=tuple(k for k in given if k not in FIELDS),
    )


def _warn_unknown_fields(given: dict[str, yaml.Node], label: str, spc: str, findings: Findings) -> None:
    """Ignored, as by the official provider, but reported with the nearest known field (or what it became)."""
    for name in given:
        if name in FIELDS:
            continue
        suggestion = DECLARATION.field_suggestion(name)
        hint = f"; did you mean {echo(suggestion)}?" if suggestion else ""
        findings.warn(f"unknown field {echo(name)} of object {echo(label)} is ignored{hint}",
                      label, key=f"object field {name}", object=label, field=name, suggestion=suggestion)


def build_request(secret_path: str, method: str, args: dict[str, Any] | None, where: str) -> ReadRequest:
    """The Vault call for a secretPath: /v1/ prefix, query string → parameters, secretArgs → JSON body."""
    path, _, query = secret_path.partition("?")
    if has_dot_segment(path):
        # Resolved by the HTTP stack or by Vault, they would leave the path prefix --allowed-vault-addresses allows.
        raise invalid(f"{where}: secretPath {secret_path!r} has a '.' or '..' segment (also when percent-encoded); "
                      "give the Vault API path without them, e.g. secret/data/app")
    if ";" in query or _BAD_ESCAPE.search(query):
        raise invalid(f"{where}: failed to parse query parameters from secretPath {echo(secret_path)}: use "
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


def _string(given: dict[str, yaml.Node], name: str, where: str) -> str:
    node = given.get(name)
    if node is None:
        return ""
    if not isinstance(node, yaml.ScalarNode):
        shape = "list" if isinstance(node, yaml.SequenceNode) else "map"
        raise invalid(f"{where}: {name} must be a string, not a {shape}")
    return scalar_text(node).strip() if name != "secretKey" else scalar_text(node)


def _mode(node: yaml.Node | None, where: str) -> int | None:
    if node is None or (isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null")):
        return None
    text = scalar_text(node).strip().replace("_", "") if isinstance(node, yaml.ScalarNode) else ""
    value = integer(text)
    if value is None:
        raise invalid(f"{where}: filePermission must be a file mode in octal like 0600 (or decimal like 384)")
    if not mode_in_range(value):
        raise invalid(f"{where}: filePermission {value:#o} is outside the file mode range 0..0777")
    return value or None


def _secret_args(node: yaml.Node | None, where: str) -> dict[str, Any] | None:
    if node is None or (isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null")):
        return None
    if not isinstance(node, yaml.MappingNode):
        raise invalid(f"{where}: secretArgs must be a map of request body fields, e.g. common_name: app.example.com")
    value = core_value(node, where)
    assert isinstance(value, dict)
    return value
