"""A Vault answer → the files of one object: one file at objectName, or, with `secretKey: "*"`, one file
per key of the secret under the directory objectName.

Per-key files are named `<objectName>/<key>`; a key that cannot be a file name there (empty, `.`, `..`,
with a `/`, or breaking the driver's path rules) fails the mount with a message naming it, rather than
being skipped. All of an object's files share its id (objectName), so its version changes when any
key is added, removed or changed.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from provider.backends.vault.objects import VaultObject
from provider.backends.vault.render import key_source, render_keys, render_object
from provider.errors import ErrorKind, ProviderError, echo
from provider.files import SecretFile
from provider.gojson import RenderError
from provider.paths import path_problem


def object_files(obj: VaultObject, body: Mapping[str, Any]) -> list[SecretFile]:
    """The object's files from its read's answer; ProviderError naming the object when it cannot be written."""
    if obj.per_key:
        return per_key_files(obj, body)
    try:
        contents = render_object(body, obj.secret_key, obj.encoding)
    except KeyError:
        raise ProviderError(ErrorKind.NOT_FOUND, f"object {echo(obj.name)}: key {echo(obj.secret_key)} does not "
                            f"exist at secretPath {echo(obj.secret_path)}{key_hint(body, obj.secret_key)}") from None
    except RenderError as exc:
        raise ProviderError(ErrorKind.INVALID_ARGUMENT, f"object {echo(obj.name)} (secretPath {echo(obj.secret_path)}, "
                            f"secretKey {echo(obj.secret_key)}, encoding {obj.encoding}): {exc}") from None
    return [SecretFile(path=obj.name, contents=contents, object_id=obj.name, object_spec=obj.spec, mode=obj.mode)]


def per_key_files(obj: VaultObject, body: Mapping[str, Any]) -> list[SecretFile]:
    what = f"object {echo(obj.name)} (secretPath {echo(obj.secret_path)}, secretKey \"*\")"
    try:
        rendered = render_keys(body, obj.encoding)
    except RenderError as exc:
        raise ProviderError(ErrorKind.INVALID_ARGUMENT, f"{what}, encoding {obj.encoding}: {exc}") from None
    if not rendered:
        raise ProviderError(ErrorKind.NOT_FOUND, f"{what}: the secret has no keys, so there is no file to write; "
                            "check secretPath")
    files = []
    for key, contents in rendered:
        problem = key_file_problem(obj.name, key)
        if problem:
            raise ProviderError(ErrorKind.INVALID_ARGUMENT, f"{what}: key {echo(key)} cannot be a file name: it "
                                f"{problem}. Rename the key in Vault, or mount it with an object of its own "
                                "(secretKey and any objectName)")
        files.append(SecretFile(path=f"{obj.name}/{key}", contents=contents, object_id=obj.name,
                                object_spec=obj.spec, mode=obj.mode))
    return files


def key_file_problem(directory: str, key: str) -> str | None:
    """Why `<directory>/<key>` cannot be a key's file; None when it can."""
    if key == "":
        return "is empty"
    if "/" in key:
        return "contains '/'"
    if key in (".", ".."):
        return f"is {echo(key)}"
    return path_problem(f"{directory}/{key}")


def key_hint(body: Mapping[str, Any], key: str) -> str:
    data = body.get("data")
    if not isinstance(data, Mapping):
        return ""
    guess = difflib.get_close_matches(key, [str(k) for k in key_source(data)], n=1, cutoff=0.6)
    return f"; did you mean {echo(guess[0])}?" if guess else ""
