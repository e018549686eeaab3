"""A read's answer → an object's files: secretKey "*" gives one file per key (official-provider bytes each)."""

from __future__ import annotations

import pytest

from provider.backends.vault.files import key_file_problem, object_files
from provider.backends.vault.objects import VaultObject, parse_objects
from provider.errors import ErrorKind, ProviderError
from provider.gojson import parse_json

KV2 = parse_json(b'{"request_id":"r","data":{"data":{"user":"app","port":5432,"tags":["a"],"b64":"aGk="},'
                 b'"metadata":{"version":3}}}')
KV1 = parse_json(b'{"request_id":"r","data":{"user":"app","data":"plain"}}')


def obj(fields: str) -> VaultObject:
    (parsed,) = parse_objects(f"- {{objectName: cfg, secretPath: p, {fields}}}", "ns/spc")
    return parsed


@pytest.mark.parametrize(
    ("body", "fields", "expected"),
    [
        (KV2, 'secretKey: "*"', {"cfg/b64": b"aGk=", "cfg/port": b"5432", "cfg/tags": b'["a"]', "cfg/user": b"app"}),
        (KV1, 'secretKey: "*"', {"cfg/data": b"plain", "cfg/user": b"app"}),
        (KV2, "secretKey: user", {"cfg": b"app"}),
        (parse_json(b'{"data":{"data":{"b64":"aGk="}}}'), 'secretKey: "*", encoding: base64', {"cfg/b64": b"hi"}),
    ],
)
def test_files_of_an_object(body: dict[str, object], fields: str, expected: dict[str, bytes]) -> None:
    files = object_files(obj(fields), body)
    assert {f.path: f.contents for f in files} == expected
    assert {f.object_id for f in files} == {"cfg"}


@pytest.mark.parametrize(
    ("key", "problem"),
    [("user", None), (".env", None), ("..data", None), ("a b", None), ("", "is empty"), ("a/b", "contains '/'"),
     (".", "is '.'"), ("..", "is '..'"), ("a\x00", "contains a NUL byte"), ("k" * 256, "longer than 255 bytes")],
)
def test_key_file_names(key: str, problem: str | None) -> None:
    found = key_file_problem("cfg", key)
    assert (found is None) if problem is None else (found is not None and problem in found)


@pytest.mark.parametrize(
    ("body", "fields", "kind", "words"),
    [
        (parse_json(b'{"data":{"data":{"k":"not base64!"}}}'), 'secretKey: "*", encoding: base64',
         ErrorKind.INVALID_ARGUMENT, "key 'k': the value is not valid base64"),
        (parse_json(b'{"data":{"data":{}}}'), 'secretKey: "*"', ErrorKind.NOT_FOUND, "the secret has no keys"),
        (parse_json(b'{"data":{"a/b":"x"}}'), 'secretKey: "*"', ErrorKind.INVALID_ARGUMENT,
         "key 'a/b' cannot be a file name: it contains '/'"),
        (KV2, "secretKey: usr", ErrorKind.NOT_FOUND, "did you mean 'user'?"),
    ],
)
def test_errors_name_the_object_and_key_never_the_value(body: dict[str, object], fields: str, kind: ErrorKind,
                                                        words: str) -> None:
    with pytest.raises(ProviderError) as caught:
        object_files(obj(fields), body)
    assert caught.value.kind is kind and words in caught.value.message
    assert caught.value.message.startswith("object 'cfg'") and "not base64!" not in caught.value.message
