"""The SPC's `objects` parameter: the official `array:` of YAML strings, parsed and checked.

Every check runs here, before any request, and names the object it is about. Differences from the
official provider, all deliberate (docs/azure.md): objectType and filePermission are checked here
instead of failing at fetch time or silently becoming mode 0; objectVersion "latest" means the latest
version in single-version mode too; a quoted objectVersionHistory ("5") is accepted; an element may be
a YAML mapping as well as a YAML string.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from provider import spcyaml
from provider.backends.azure.declaration import DECLARATION
from provider.errors import ProviderError, echo, invalid
from provider.findings import Findings, checked
from provider.limits import MAX_MODE, check_object_count
from provider.paths import path_problem

OBJECT_TYPES = ("secret", "key", "cert")
FORMATS = ("pem", "pfx")
ENCODINGS = ("utf-8", "base64", "hex")
FIELDS = DECLARATION.field_names
KNOWN_FIELDS = frozenset(FIELDS)
# Key Vault object names: 1-127 letters, digits and dashes. Versions: 32 hex digits in practice.
_OBJECT_NAME = re.compile(r"^[0-9A-Za-z-]{1,127}$")
_OBJECT_VERSION = re.compile(r"^[0-9A-Za-z]{0,64}$")
_OCTAL = re.compile(r"^[0-7]{1,4}$")
MAX_HISTORY = 2**31 - 1


@dataclass(frozen=True)
class KeyVaultObject:
    """One element of `objects`, trimmed, defaulted and checked."""

    index: int
    name: str
    alias: str
    type: str  # secret | key | cert
    version: str  # "" = latest
    history: int  # > 1: the newest `history` versions, as <file>/0 .. <file>/N-1
    format: str  # pem | pfx
    encoding: str  # utf-8 | base64 | hex
    mode: int | None  # from filePermission; None = the request's default
    vault_name: str = ""  # keyvaultName of the object; "" = the SPC's

    @property
    def file_name(self) -> str:
        return self.alias or self.name

    @property
    def plain_id(self) -> str:
        """The official provider's object id: <type>/<name>, alias not included."""
        return f"{self.type}/{self.name}"

    @property
    def syncs_history(self) -> bool:
        return self.history > 1

    @property
    def label(self) -> str:
        """How findings name the object: its objectName, or its position when it has none."""
        return self.name or f"#{self.index}"

    def describe(self) -> str:
        return f"object {self.index} ({self.type or 'no type'} {echo(self.name)})"

    def spec(self, vault_url: str, history_index: int | None = None) -> str:
        """Canonical JSON of what the SPC asked for (and which version of a history): no secret material."""
        fields: dict[str, object] = {
            "vault": vault_url,
            "type": self.type,
            "name": self.name,
            "alias": self.alias,
            "version": self.version,
            "history": self.history,
            "format": self.format,
            "encoding": self.encoding,
            "mode": self.mode,
        }
        if history_index is not None:
            fields["historyIndex"] = history_index
        return json.dumps(fields, sort_keys=True, separators=(",", ":"))


class _StringLoader(spcyaml.SpcLoader):
    """YAML with every scalar a string except null, as yaml.v3 decodes into the official string fields.

    So `filePermission: 0755` stays "0755" (YAML 1.1 would read octal 493) and `objectVersion: 1e3`
    stays "1e3".
    """


_StringLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag == "tag:yaml.org,2002:null"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def parse_objects(raw: str) -> list[KeyVaultObject]:
    """`objects` → checked objects, in SPC order. INVALID_ARGUMENT on the first problem."""
    return checked(lambda findings: check_objects(raw, findings))


def check_objects(raw: str, findings: Findings) -> list[KeyVaultObject]:
    """The valid objects, in SPC order; every problem recorded in `findings` with its object."""
    try:
        elements = _elements(raw)
    except ProviderError as exc:
        findings.error(exc)
        return []
    checked = [check_object(index, element, findings) for index, element in enumerate(elements)]
    return [obj for obj in checked if obj is not None]


def _elements(raw: str) -> list[Any]:
    if not raw.strip():
        raise invalid("objects is not set: list the Key Vault objects to mount (objects: | array: ...)")
    try:
        document = spcyaml.load(raw)
    except RecursionError:
        raise invalid("objects nests deeper than any list of object descriptions") from None
    except yaml.YAMLError as exc:
        raise invalid(f"objects is not valid YAML ({_yaml_where(exc)})") from None
    if not isinstance(document, dict) or "array" not in document:
        raise invalid(
            "objects must be a YAML mapping with an 'array' list, each element an object description "
            "(objects: | then array: then - | objectName: ...)"
        )
    elements = document["array"] or []
    if not isinstance(elements, list):
        raise invalid("objects 'array' must be a YAML list")
    if not elements:
        raise invalid("objects 'array' is empty: list at least one Key Vault object")
    check_object_count(len(elements), "objects 'array'")
    return elements


def parse_object(index: int, element: Any) -> KeyVaultObject:
    """One element → a checked object; INVALID_ARGUMENT on its first problem."""
    return checked(lambda findings: check_object(index, element, findings))


def check_object(index: int, element: Any, findings: Findings) -> KeyVaultObject | None:
    """One element → the object, or None with each of its problems (and unknown fields) in `findings`."""
    label = f"#{index}"
    if isinstance(element, str):
        try:
            fields = spcyaml.load(element, _StringLoader)
        except RecursionError:
            findings.error(invalid(f"object {index} in objects nests deeper than any object description"), label)
            return None
        except yaml.YAMLError as exc:
            findings.error(invalid(f"object {index} in objects is not valid YAML ({_yaml_where(exc)})"), label)
            return None
    else:
        fields = element
    if not isinstance(fields, dict):
        findings.error(invalid(f"object {index} in objects must be a YAML mapping with objectName, objectType, ..."),
                       label)
        return None
    before = findings.error_count
    text = {key: findings.attempt(functools.partial(_scalar, index, key, fields.get(key)), label) or ""
            for key in FIELDS}
    label = text["objectName"] or label
    for key in sorted(str(key) for key in fields if key not in KNOWN_FIELDS):
        suggestion = DECLARATION.field_suggestion(key)
        hint = f"; did you mean {echo(suggestion)}?" if suggestion else ""
        findings.warn(f"object {index} ({echo(text['objectName'])}): unknown field {echo(key)} is ignored{hint}",
                      label,
                      key=f"object field {key}", index=index, field=key, suggestion=suggestion)
    what = f"object {index} ({text['objectType'].lower() or 'no type'} {echo(text['objectName'])})"
    history = findings.attempt(lambda: _history(what, text["objectVersionHistory"]), label)
    obj = KeyVaultObject(
        index=index,
        name=text["objectName"],
        alias=text["objectAlias"],
        type=text["objectType"].lower(),
        version="" if text["objectVersion"].lower() == "latest" else text["objectVersion"],
        history=history or 0,
        format=text["objectFormat"].lower() or "pem",
        encoding=text["objectEncoding"].lower() or "utf-8",
        mode=None,
        vault_name=text["keyvaultName"],
    )
    for problem in object_problems(obj, text):
        findings.error(problem, label)
    with_mode = findings.attempt(lambda: _with_mode(obj, text["filePermission"]), label)
    return with_mode if findings.error_count == before else None


def object_problems(obj: KeyVaultObject, text: Mapping[str, str]) -> list[ProviderError]:
    """Every problem of one object: the official checks in their order (format, encoding, file name), then ours."""
    what = obj.describe()
    problems: list[ProviderError] = []
    if obj.type not in OBJECT_TYPES:
        problems.append(invalid(f"{what}: invalid objectType {echo(text['objectType'])}, should be secret, key "
                                "or cert"))
    if obj.format not in FORMATS:
        problems.append(invalid(f"{what}: invalid objectFormat: {text['objectFormat']}, should be PEM or PFX"))
    elif obj.format == "pfx" and obj.type != "secret":
        problems.append(invalid(f"{what}: PFX format only supported for objectType: secret"))
    if text["objectEncoding"] and obj.type != "secret":
        problems.append(invalid(f"{what}: objectEncoding only supported for objectType: secret"))
    if obj.encoding not in ENCODINGS:
        problems.append(invalid(f"{what}: invalid objectEncoding: {text['objectEncoding']}, should be hex, base64 "
                                "or utf-8"))
    try:
        check_file_name(what, obj.file_name)
    except ProviderError as exc:
        problems.append(exc)
    if not _OBJECT_NAME.match(obj.name):
        problems.append(invalid(
            f"{what}: objectName must be the Key Vault name of the object: 1 to 127 letters, digits and '-'"
        ))
    if not _OBJECT_VERSION.match(obj.version):
        problems.append(invalid(f"{what}: objectVersion {echo(obj.version)} is not a Key Vault version id (letters and "
                                "digits)"))
    return problems


def check_file_name(what: str, name: str) -> None:
    """The official rules (not empty, relative, no '..'), then the driver's path rules, so no fetch is wasted."""
    if name == "":
        raise invalid(f"{what}: file name must not be empty")
    if name.startswith("/"):
        raise invalid(f"{what}: file name {echo(name)} must be a relative path")
    if ".." in name:
        raise invalid(f"{what}: file name {echo(name)} must not contain '..'")
    problem = path_problem(name)
    if problem:
        raise invalid(f"{what}: file name {echo(name)} {problem}")


def _with_mode(obj: KeyVaultObject, permission: str) -> KeyVaultObject:
    if permission == "":
        return obj
    if not _OCTAL.match(permission) or int(permission, 8) > MAX_MODE:
        raise invalid(
            f"{obj.describe()}: filePermission {echo(permission)} is not an octal file mode between 0000 and "
            "0777 such as \"0644\""
        )
    return dataclasses.replace(obj, mode=int(permission, 8))


def _scalar(index: int, key: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        raise invalid(f"object {index} in objects: {key} must be a single value, not a YAML {type(value).__name__}")
    return str(value).strip()


def _history(what: str, value: str) -> int:
    if value == "":
        return 0
    try:
        number = int(value, 10)
    except ValueError:
        raise invalid(f"{what}: objectVersionHistory must be a whole number") from None
    if number > MAX_HISTORY:
        raise invalid(f"{what}: objectVersionHistory {number} is too large")
    return number


def _yaml_where(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or "syntax error"
    if mark is None:
        return str(problem)
    return f"{problem} at line {mark.line + 1} column {mark.column + 1}"
