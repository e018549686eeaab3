"""The `objects` YAML → VaultObject and its Vault request (official config_test/client_test cases)."""

from __future__ import annotations

import json

import pytest

from provider.backends.vault.objects import (
    CheckedObjects,
    ReadRequest,
    build_request,
    ensure_v1_prefix,
    parse_objects,
)
from provider.errors import ErrorKind, ProviderError
from provider.findings import Findings

SPC = "ns/spc"


def test_parse_parameters_from_yaml_keeps_types_of_secret_args() -> None:
    # TestParseParametersFromYaml: two PKI objects on one path, secretArgs types preserved.
    text = """
- objectName: "test-certs"
  secretPath: "pki/issue/example-dot-com"
  secretKey: "certificate"
  secretArgs:
    common_name: "test.example.com"
    ip_sans: "127.0.0.1"
    exclude_cn_from_sans: true
  method: "PUT"
- objectName: "internal-certs"
  secretPath: "pki/issue/example-dot-com"
  secretArgs:
    common_name: "internal.example.com"
  method: "PUT"
"""
    first, second = parse_objects(text, SPC)
    assert (first.name, first.secret_key, first.request.method) == ("test-certs", "certificate", "PUT")
    assert json.loads(first.request.body or "") == {
        "common_name": "test.example.com", "ip_sans": "127.0.0.1", "exclude_cn_from_sans": True}
    assert json.loads(second.request.body or "") == {"common_name": "internal.example.com"}
    assert (second.secret_key, second.mode, second.encoding) == ("", None, "utf-8")
    assert first.request != second.request  # different secretArgs: two calls (the official provider makes one)


@pytest.mark.parametrize(
    ("path", "expected"),
    [  # TestEnsureV1Prefix
        ("secret/foo", "/v1/secret/foo"),
        ("/secret/foo", "/v1/secret/foo"),
        ("v1/secret/foo", "/v1/secret/foo"),
        ("/v1/secret/foo", "/v1/secret/foo"),
        ("", "/v1/"),
        ("/v1/", "/v1/"),
        ("1/secret/foo", "/v1/1/secret/foo"),
        ("/v1/v1/", "/v1/v1/"),
        ("/v2/secret/foo", "/v1/v2/secret/foo"),
    ],
)
def test_ensure_v1_prefix(path: str, expected: str) -> None:
    assert ensure_v1_prefix(path) == expected


@pytest.mark.parametrize(
    ("secret_path", "method", "args", "expected"),
    [  # TestGenerateRequest
        ("secret/foo", "GET", None, ReadRequest("/v1/secret/foo")),
        ("secret/foo?", "GET", None, ReadRequest("/v1/secret/foo")),
        ("secret/foo?bar=true&baz=maybe&zap=0", "GET", None,
         ReadRequest("/v1/secret/foo", (("bar", "true"), ("baz", "maybe"), ("zap", "0")))),
        ("secret/foo?zap=0&bar=a%20b", "GET", None, ReadRequest("/v1/secret/foo", (("bar", "a b"), ("zap", "0")))),
        ("secret/foo", "PUT", None, ReadRequest("/v1/secret/foo", method="PUT")),
        ("secret/foo", "POST", {"bar": True, "baz": 10, "zap": "a string"},
         ReadRequest("/v1/secret/foo", method="POST", body='{"bar":true,"baz":10,"zap":"a string"}')),
        ("secret/foo", "GET", {}, ReadRequest("/v1/secret/foo", body="{}")),
    ],
)
def test_build_request(secret_path: str, method: str, args: dict[str, object] | None, expected: ReadRequest) -> None:
    assert build_request(secret_path, method, args, "object 'x'") == expected


@pytest.mark.parametrize("secret_path", [
    "../team-b/v1/secret/data/x", "secret/../../team-b/x", "secret/./data/x", "secret/data/x/..",
    "secret/%2e%2e/%2e%2e/team-b", "secret/%2E%2E/x", "secret/.%2e/x", "secret/%2e%2E%2fsys/x",
    "secret/%252e%252e/x", "secret\\..\\sys", "/v1/secret/../sys/x?list=true",
])
def test_a_secret_path_with_dot_segments_is_refused(secret_path: str) -> None:
    # Issue 13: resolved by the HTTP stack or by Vault, they leave the prefix --allowed-vault-addresses allows.
    with pytest.raises(ProviderError) as caught:
        build_request(secret_path, "GET", None, "object 'x'")
    assert caught.value.kind is ErrorKind.INVALID_ARGUMENT
    assert f"object 'x': secretPath {secret_path!r} has a '.' or '..' segment" in caught.value.message


@pytest.mark.parametrize("secret_path", ["secret/data/app.conf", "secret/data/..hidden", "secret/data/x?a=..",
                                         "secret/data/.../x"])
def test_dots_that_are_not_segments_are_kept(secret_path: str) -> None:
    assert build_request(secret_path, "GET", None, "object 'x'").path.startswith("/v1/secret/data/")


@pytest.mark.parametrize("secret_path", ["secret/foo?a=%zz", "secret/foo?a=1;b=2"])
def test_bad_query_string_is_an_error(secret_path: str) -> None:
    with pytest.raises(ProviderError, match="failed to parse query parameters from secretPath"):
        build_request(secret_path, "GET", None, "object 'x'")


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("0600", 0o600),
        ("0624", 0o624),
        ("0o600", 0o600),
        ("420", 0o644),
        ("384", 0o600),
        ("'0600'", 0o600),
        ("0", None),
        ("~", None),
        ("0x1a4", 0o644),
    ],
)
def test_file_permission_octal_or_decimal(written: str, expected: int | None) -> None:
    (obj,) = parse_objects(f"- objectName: a\n  secretPath: p\n  filePermission: {written}\n", SPC)
    assert obj.mode == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [  # secretArgs values as yaml.v3 reads them into interface{}: YAML 1.2 core, legacy octal
        ("yes", "yes"),
        ("on", "on"),
        ("true", True),
        ("False", False),
        ("10", 10),
        ("0600", 384),
        ("'10'", "10"),
        ('"true"', "true"),
        ("1.5", 1.5),
        ("24h", "24h"),
        ("2001-12-14", "2001-12-14"),
        ("null", None),
        ("[1, a]", [1, "a"]),
    ],
)
def test_secret_args_value_types(value: str, expected: object) -> None:
    (obj,) = parse_objects(f"- objectName: a\n  secretPath: p\n  method: PUT\n  secretArgs:\n    v: {value}\n", SPC)
    assert json.loads(obj.request.body or "") == {"v": expected}


@pytest.mark.parametrize(
    ("field", "value", "attribute", "expected"),
    [  # string fields keep the text as written, as yaml.v3 does for string targets
        ("secretKey", "0600", "secret_key", "0600"),
        ("secretKey", "yes", "secret_key", "yes"),
        ("secretKey", "10", "secret_key", "10"),
        ("encoding", "BASE64", "encoding", "base64"),
        ("encoding", "Hex", "encoding", "hex"),
        ("encoding", "''", "encoding", "utf-8"),
    ],
)
def test_string_fields_keep_the_written_text(field: str, value: str, attribute: str, expected: str) -> None:
    (obj,) = parse_objects(f"- objectName: a\n  secretPath: p\n  {field}: {value}\n", SPC)
    assert getattr(obj, attribute) == expected


def test_method_defaults_to_get_and_is_upper_cased() -> None:
    plain, lower = parse_objects("- {objectName: a, secretPath: p}\n- {objectName: b, secretPath: p, method: get}", SPC)
    assert plain.request == lower.request == ReadRequest("/v1/p", method="GET")


def test_object_spec_is_canonical_json_of_the_given_fields() -> None:
    (obj,) = parse_objects("- secretPath: s/data/x\n  objectName: a\n  filePermission: 0600\n  extra: 1\n", SPC)
    assert obj.spec == '{"filePermission":384,"objectName":"a","secretPath":"s/data/x"}'
    assert obj.unknown_fields == ("extra",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no secrets configured"),
        ("   \n", "no secrets configured"),
        ("# only a comment", "no secrets configured"),
        ("[]", "empty list"),
        ("array:\n  - |\n    objectName: a", "'array:' wrapper"),
        ("objectName: a", "must be a YAML list"),
        ("- objectName: a\n secretPath: [", "not valid YAML"),
        ("- just-a-string", "object #1 must be a mapping"),
        ("- secretPath: p", "object #1 has no objectName"),
        ("- {objectName: a, objectPath: p}", "renamed secretPath"),
        ("- {objectName: a}", "object 'a' has no secretPath"),
        ("- {objectName: a, secretPath: p}\n- {objectName: a, secretPath: q}",
         "the following keys were duplicated: a"),
        ("- {objectName: ../x, secretPath: p}", "object '../x': objectName has a '..' element"),
        ("- {objectName: /etc/x, secretPath: p}", "is absolute"),
        ("- {objectName: a, secretPath: p, method: DELETE}", "method 'DELETE' is not supported"),
        ("- {objectName: a, secretPath: p, encoding: rot13}", "invalid encoding type 'rot13'"),
        ("- {objectName: a, secretPath: p, filePermission: rw}", "filePermission must be a file mode"),
        ("- {objectName: a, secretPath: p, filePermission: 01777}", "outside the file mode range"),
        ("- {objectName: a, secretPath: p, secretArgs: [1]}", "secretArgs must be a map"),
        ("- {objectName: a, secretPath: p, secretArgs: {x: .inf}}", "cannot be sent as JSON"),
        ("- {objectName: [a], secretPath: p}", "objectName must be a string"),
        ("- {objectName: a, objectName: b, secretPath: p}", "given twice"),
    ],
)
def test_invalid_objects(text: str, message: str) -> None:
    with pytest.raises(ProviderError) as caught:
        parse_objects(text, SPC)
    assert caught.value.kind is ErrorKind.INVALID_ARGUMENT
    assert message in caught.value.message


def test_yaml_error_does_not_echo_the_text() -> None:
    marker = "s3cr3t-marker-value"
    with pytest.raises(ProviderError) as caught:
        parse_objects(f"- objectName: a\n  secretArgs: {{password: {marker}\n", SPC)
    assert marker not in caught.value.message
    assert "line" in caught.value.message


def test_checked_texts_give_the_same_objects_and_warnings_and_errors_are_never_kept() -> None:
    cache = CheckedObjects(max_text=200, budget=450)
    text = "- {objectName: a, secretPath: secret/data/a, secretKy: k}"
    first, again = Findings(), Findings()
    objects = cache.check(text, "ns/spc", first)
    assert cache.check(text, "ns/spc", again) is objects and len(cache) == 1
    assert [(f.object, f.message, f.key, dict(f.fields)) for f in again.items] == \
        [(f.object, f.message, f.key, dict(f.fields)) for f in first.items] and first.warnings
    assert cache.check(text, "ns/other", Findings())[0] == objects[0] and len(cache) == 2  # keyed by the SPC too
    bad = "- {objectName: a, secretPath: secret/data/../b}"
    for _ in range(2):
        findings = Findings()
        assert cache.check(bad, "ns/spc", findings) == () and findings.error_count == 1
    assert len(cache) == 2


def test_checked_texts_are_bounded_by_size() -> None:
    cache = CheckedObjects(max_text=100, budget=250)
    for index in range(20):
        cache.check(f"- {{objectName: o{index}, secretPath: p}}", "ns/spc", Findings())
    assert cache.chars <= 250 and 0 < len(cache) < 20
    big = "- {objectName: big, secretPath: p}" + " " * 200
    cache.check(big, "ns/spc", Findings())
    assert ("ns/spc", big) not in set(cache) and cache.chars <= 250
