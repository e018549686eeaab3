"""The SPC's `objects` parameter: the official `array:` of YAML strings, parsed and checked.

Every check runs here, before any request, and names the object it is about. Differences from the
official provider, all deliberate (docs/azure.md): objectType and filePermission are checked here
instead of failing at fetch time or silently becoming mode 0; objectVersion "latest" means the latest
version in single-version mode too; a quoted objectVersionHistory ("5") is accepted; an element may be
a YAML mapping as well as a YAML string.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from provider.errors import invalid

log = logging.getLogger(__name__)

OBJECT_TYPES = ("secret", "key", "cert")
FORMATS = ("pem", "pfx")
ENCODINGS = ("utf-8", "base64", "hex")
KNOWN_FIELDS = frozenset(
    {
        "objectName",
        "objectAlias",
        "objectType",
        "objectVersion",
        "objectVersionHistory",
        "objectFormat",
        "objectEncoding",
        "filePermission",
    }
)
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

    def describe(self) -> str:
        return f"object {self.index} ({self.type or 'no type'} {self.name!r})"

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


class _StringLoader(yaml.SafeLoader):
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
    if not raw.strip():
        raise invalid("objects is not set: list the Key Vault objects to mount (objects: | array: ...)")
    try:
        document = yaml.safe_load(raw)
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
    return [parse_object(index, element) for index, element in enumerate(elements)]


def parse_object(index: int, element: Any) -> KeyVaultObject:
    if isinstance(element, str):
        try:
            fields = yaml.load(element, Loader=_StringLoader)
        except yaml.YAMLError as exc:
            raise invalid(f"object {index} in objects is not valid YAML ({_yaml_where(exc)})") from None
    else:
        fields = element
    if not isinstance(fields, dict):
        raise invalid(f"object {index} in objects must be a YAML mapping with objectName, objectType, ...")
    unknown = sorted(str(key) for key in fields if key not in KNOWN_FIELDS)
    if unknown:
        log.warning("objects element has fields the provider ignores",
                    extra={"fields": {"index": index, "unknown": unknown}})
    text = {key: _scalar(index, key, fields.get(key)) for key in KNOWN_FIELDS}
    what = f"object {index} ({text['objectType'].lower() or 'no type'} {text['objectName']!r})"
    obj = KeyVaultObject(
        index=index,
        name=text["objectName"],
        alias=text["objectAlias"],
        type=text["objectType"].lower(),
        version="" if text["objectVersion"].lower() == "latest" else text["objectVersion"],
        history=_history(what, text["objectVersionHistory"]),
        format=text["objectFormat"].lower() or "pem",
        encoding=text["objectEncoding"].lower() or "utf-8",
        mode=None,
    )
    check_object(obj, text)
    return _with_mode(obj, text["filePermission"])


def check_object(obj: KeyVaultObject, text: Mapping[str, str]) -> None:
    """The official validation order (format, encoding, file name), then our additions."""
    what = obj.describe()
    if obj.type not in OBJECT_TYPES:
        raise invalid(f"{what}: invalid objectType {text['objectType']!r}, should be secret, key or cert")
    if obj.format not in FORMATS:
        raise invalid(f"{what}: invalid objectFormat: {text['objectFormat']}, should be PEM or PFX")
    if obj.format == "pfx" and obj.type != "secret":
        raise invalid(f"{what}: PFX format only supported for objectType: secret")
    if text["objectEncoding"] and obj.type != "secret":
        raise invalid(f"{what}: objectEncoding only supported for objectType: secret")
    if obj.encoding not in ENCODINGS:
        raise invalid(f"{what}: invalid objectEncoding: {text['objectEncoding']}, should be hex, base64 or utf-8")
    check_file_name(what, obj.file_name)
    if not _OBJECT_NAME.match(obj.name):
        raise invalid(
            f"{what}: objectName must be the Key Vault name of the object: 1 to 127 letters, digits and '-'"
        )
    if not _OBJECT_VERSION.match(obj.version):
        raise invalid(f"{what}: objectVersion {obj.version!r} is not a Key Vault version id (letters and digits)")


def check_file_name(what: str, name: str) -> None:
    if name == "":
        raise invalid(f"{what}: file name must not be empty")
    if name.startswith("/"):
        raise invalid(f"{what}: file name {name!r} must be a relative path")
    if ".." in name:
        raise invalid(f"{what}: file name {name!r} must not contain '..'")


def _with_mode(obj: KeyVaultObject, permission: str) -> KeyVaultObject:
    if permission == "":
        return obj
    if not _OCTAL.match(permission) or int(permission, 8) > 0o777:
        raise invalid(
            f"{obj.describe()}: filePermission {permission!r} is not an octal file mode between 0000 and "
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
