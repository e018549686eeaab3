"""`objects` parsing and per-object validation: the official validate_test.go and parameters_test.go
cases, plus the checks we add (objectType, filePermission)."""

from __future__ import annotations

import pytest

from provider.backends.azure.objects import check_file_name, parse_object, parse_objects
from provider.errors import ErrorKind, ProviderError


def element(**fields: object) -> str:
    """One `objects` element as the official format writes it: a YAML string."""
    return "\n".join(f"{key}: {value}" for key, value in fields.items())


def objects_of(*elements: str) -> str:
    body = "".join("  - |\n" + "".join(f"    {line}\n" for line in e.splitlines()) for e in elements)
    return "array:\n" + body


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        # validate_test.go: objectFormat
        ({"objectType": "secret", "objectFormat": "pkcs"}, "invalid objectFormat: pkcs, should be PEM or PFX"),
        ({"objectType": "cert", "objectFormat": "pfx"}, "PFX format only supported for objectType: secret"),
        ({"objectType": "key", "objectFormat": "PFX"}, "PFX format only supported for objectType: secret"),
        # objectEncoding
        ({"objectType": "secret", "objectEncoding": "utf-16"},
         "invalid objectEncoding: utf-16, should be hex, base64 or utf-8"),
        ({"objectType": "cert", "objectEncoding": "base64"}, "objectEncoding only supported for objectType: secret"),
        # file names
        ({"objectType": "secret", "objectAlias": "/secret1"}, "must be a relative path"),
        ({"objectType": "secret", "objectAlias": "secret1/.."}, "must not contain '..'"),
        ({"objectType": "secret", "objectAlias": "../secret1"}, "must not contain '..'"),
        ({"objectType": "secret", "objectAlias": "a..b"}, "must not contain '..'"),
        # ours: objectType before any fetch, filePermission instead of mode 0, names and versions
        ({"objectType": "secrets"}, "invalid objectType 'secrets', should be secret, key or cert"),
        ({}, "invalid objectType '', should be secret, key or cert"),
        ({"objectType": "secret", "filePermission": "0900"}, "filePermission '0900' is not an octal file mode"),
        ({"objectType": "secret", "filePermission": "900"}, "filePermission '900' is not an octal file mode"),
        ({"objectType": "secret", "filePermission": "01777"}, "filePermission '01777' is not an octal file mode"),
        ({"objectType": "secret", "filePermission": "rw-r--r--"}, "is not an octal file mode"),
        ({"objectType": "secret", "objectVersion": "v1/../x"}, "is not a Key Vault version id"),
        ({"objectType": "secret", "objectVersionHistory": "many"}, "objectVersionHistory must be a whole number"),
    ],
)
def test_invalid_objects_name_the_object_and_the_rule(fields: dict[str, str], message: str) -> None:
    with pytest.raises(ProviderError) as caught:
        parse_object(3, element(objectName="secret1", **fields))
    assert caught.value.kind is ErrorKind.INVALID_ARGUMENT
    assert message in caught.value.message
    assert caught.value.message.startswith("object 3 (")


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"objectType": "cert", "objectFormat": '""'}, ("cert", "pem", "utf-8")),
        ({"objectType": "secret", "objectFormat": "PFX"}, ("secret", "pfx", "utf-8")),
        ({"objectType": "secret", "objectFormat": "pfx"}, ("secret", "pfx", "utf-8")),
        ({"objectType": "secret", "objectEncoding": "BasE64"}, ("secret", "pem", "base64")),
        ({"objectType": "secret", "objectEncoding": "hex"}, ("secret", "pem", "hex")),
        ({"objectType": "Secret"}, ("secret", "pem", "utf-8")),
        ({"objectType": "key"}, ("key", "pem", "utf-8")),
    ],
)
def test_valid_format_and_encoding(fields: dict[str, str], expected: tuple[str, str, str]) -> None:
    obj = parse_object(0, element(objectName="secret1", **fields))
    assert (obj.type, obj.format, obj.encoding) == expected


@pytest.mark.parametrize(
    ("name", "message"),
    [("", "file name must not be empty"), ("/secret1", "must be a relative path"),
     ("secret1/..", "must not contain '..'"), ("../secret1", "must not contain '..'"), ("secret1", None)],
)
def test_file_name_rules(name: str, message: str | None) -> None:
    if message is None:
        check_file_name("object 0", name)
        return
    with pytest.raises(ProviderError, match=message):
        check_file_name("object 0", name)


def test_empty_name_and_alias_is_an_empty_file_name() -> None:
    with pytest.raises(ProviderError, match="file name must not be empty"):
        parse_object(0, element(objectType="secret"))


@pytest.mark.parametrize(
    ("permission", "mode"),
    [("0600", 0o600), ("0755", 0o755), ("644", 0o644), ('"0400"', 0o400), ("0", 0), ("", None)],
)
def test_file_permission_is_octal(permission: str, mode: int | None) -> None:
    fields = {"objectName": "s", "objectType": "secret"}
    if permission:
        fields["filePermission"] = permission
    assert parse_object(0, element(**fields)).mode == mode


def test_every_string_field_is_trimmed() -> None:
    # TestFormatKeyVaultObject: "secret1     ", "base64   ", "  secret"
    obj = parse_object(0, 'objectName: "secret1     "\nobjectEncoding: "base64   "\nobjectType: "  secret"\n'
                          'objectAlias: " alias "\nobjectVersion: " abc "\n')
    assert (obj.name, obj.encoding, obj.type, obj.alias, obj.version) == ("secret1", "base64", "secret", "alias", "abc")


@pytest.mark.parametrize(
    ("history", "expected", "syncs"),
    [(None, 0, False), ("0", 0, False), ("1", 1, False), ("4", 4, True), ('"5"', 5, True), ("-2", -2, False)],
)
def test_version_history(history: str | None, expected: int, syncs: bool) -> None:
    fields = {"objectName": "multiple-versions", "objectType": "secret"}
    if history is not None:
        fields["objectVersionHistory"] = history
    obj = parse_object(0, element(**fields))
    assert (obj.history, obj.syncs_history) == (expected, syncs)


@pytest.mark.parametrize(("version", "expected"), [("latest", ""), ("LATEST", ""), ("", ""), ("abc123", "abc123")])
def test_latest_means_the_latest_version(version: str, expected: str) -> None:
    fields = {"objectName": "s", "objectType": "secret"}
    if version:
        fields["objectVersion"] = version
    assert parse_object(0, element(**fields)).version == expected


def test_the_official_array_of_yaml_strings() -> None:
    parsed = parse_objects(objects_of(element(objectName="secret1", objectType="secret", objectVersion='""'),
                                      element(objectName="key1", objectType="key", objectAlias="k")))
    assert [(o.index, o.name, o.type, o.file_name) for o in parsed] == [(0, "secret1", "secret", "secret1"),
                                                                       (1, "key1", "key", "k")]


def test_elements_may_also_be_mappings_and_unknown_fields_are_ignored() -> None:
    parsed = parse_objects("array:\n  - objectName: s\n    objectType: secret\n    resourceGroup: rg\n")
    assert [(o.name, o.type) for o in parsed] == [("s", "secret")]


def test_yaml_keeps_text_as_text() -> None:
    # yaml.v3 into string fields: 0755 stays "0755" (not octal 493), 1e3 stays "1e3".
    obj = parse_object(0, "objectName: n1\nobjectType: secret\nfilePermission: 0755\nobjectVersion: 1e3\n")
    assert (obj.mode, obj.version) == (0o755, "1e3")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "objects is not set"),
        ("   ", "objects is not set"),
        ("- objectName: s\n", "objects must be a YAML mapping with an 'array' list"),
        ("array: [\n", "objects is not valid YAML"),
        ("array:\n", "objects 'array' is empty"),
        ("array: []\n", "objects 'array' is empty"),
        ("array: x\n", "objects 'array' must be a YAML list"),
        ("array:\n  - 'objectName: [\n'\n", "object 0 in objects is not valid YAML"),
        ("array:\n  - just text\n", "object 0 in objects must be a YAML mapping"),
        ("array:\n  - |\n    objectName: [a, b]\n", "objectName must be a single value"),
    ],
)
def test_objects_parameter_errors(raw: str, message: str) -> None:
    with pytest.raises(ProviderError) as caught:
        parse_objects(raw)
    assert caught.value.kind is ErrorKind.INVALID_ARGUMENT
    assert message in caught.value.message


def test_object_names_are_key_vault_names() -> None:
    with pytest.raises(ProviderError, match="objectName must be the Key Vault name"):
        parse_object(0, element(objectName="my_secret", objectType="secret"))
