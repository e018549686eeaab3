"""output.py: the driver's path rules and ours, modes, keyed versions, the size limit."""

from __future__ import annotations

import pytest

from provider.errors import ErrorKind, ProviderError
from provider.files import SecretFile, VersionKey
from provider.limits import MAX_RESPONSE_BYTES
from provider.output import check_file_set
from provider.paths import path_problem
from provider.wire import build_response

KEY = VersionKey(b"k" * 32, "test")


def f(path: str, contents: bytes = b"v", object_id: str | None = None, mode: int | None = None,
      spec: str = "spec", version: str | None = None) -> SecretFile:
    return SecretFile(path=path, contents=contents, object_id=object_id or path, object_spec=spec, mode=mode,
                      version=version)


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("foo", None),
        ("dir/sub/file", None),
        (".hidden", None),
        ("a/..b", None),
        ("..", "'..' element"),
        ("foo\\bar", None),
        ("a" * 255, None),
        ("", "empty"),
        ("../x", "'..' element"),
        ("a/../b", "'..' element"),
        ("/etc/x", "absolute"),
        ("..data", "reserves"),
        ("..foo/x", "reserves"),
        ("...", "reserves"),
        ("a/./b", "not a clean path"),
        ("./a", "not a clean path"),
        ("a//b", "not a clean path"),
        ("a/", "not a clean path"),
        (".", "not a clean path"),
        ("a" * 256, "longer than 255"),
        ("d/" + "é" * 128, "longer than 255"),
        ("/".join(["a" * 200] * 21), "longer than 4096"),
        ("a\x00b", "NUL"),
    ],
)
def test_path_rules(path: str, problem: str | None) -> None:
    found = path_problem(path)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


@pytest.mark.parametrize(
    ("paths", "message"),
    [
        (["a", "a"], "both write the file 'a'"),
        (["a", "a/b"], "needs 'a' to be a directory"),
        (["x/y/z", "x/y"], "needs 'x/y' to be a directory"),
        (["../x"], "'..' element"),
    ],
)
def test_file_set_conflicts(paths: list[str], message: str) -> None:
    files = [f(p, object_id=f"obj{i}") for i, p in enumerate(paths)]
    with pytest.raises(ProviderError) as caught:
        check_file_set(files)
    assert caught.value.kind is ErrorKind.INVALID_ARGUMENT
    assert message in caught.value.message


def test_nested_and_siblings_are_fine() -> None:
    check_file_set([f("a/b"), f("a/c"), f("ab"), f("nested/foo")])


@pytest.mark.parametrize(("mode", "default", "expected"), [(None, 0o644, 420), (0o600, 0o644, 384), (None, 0o400, 256),
                                                           (0, 0o644, 0)])
def test_modes(mode: int | None, default: int, expected: int) -> None:
    response, _ = build_response([f("a", mode=mode)], default, KEY)
    assert response.files[0].mode == expected


@pytest.mark.parametrize("mode", [-1, 0o1000, 0o4755])
def test_mode_out_of_range(mode: int) -> None:
    with pytest.raises(ProviderError, match=r"outside 0\.\.0777"):
        build_response([f("a", mode=mode)], 0o644, KEY)


def test_versions_are_keyed_and_stable() -> None:
    first, _ = build_response([f("a", b"one"), f("b", b"one", spec="other")], 0o644, KEY)
    again, _ = build_response([f("a", b"one"), f("b", b"one", spec="other")], 0o644, VersionKey(b"k" * 32, "x"))
    changed, _ = build_response([f("a", b"two"), f("b", b"one", spec="other")], 0o644, KEY)
    other_key, _ = build_response([f("a", b"one")], 0o644, VersionKey(b"z" * 32, "x"))
    v = {o.id: o.version for o in first.object_version}
    assert v == {o.id: o.version for o in again.object_version}
    assert v["a"] != v["b"], "same bytes, different objects → different versions"
    assert {o.id: o.version for o in changed.object_version}["a"] != v["a"]
    assert other_key.object_version[0].version != v["a"]
    assert len(v["a"]) == 44 and "+" not in v["a"] and "/" not in v["a"]


def test_native_versions_and_one_version_per_object() -> None:
    files = [f("c.crt", object_id="secret/c", version="v1"), f("c.key", object_id="secret/c", version="v1"),
             f("c", object_id="secret/c", version="v1")]
    response, records = build_response(files, 0o644, KEY)
    assert [(o.id, o.version) for o in response.object_version] == [("secret/c", "v1")]
    assert records[0].paths == ("c.crt", "c.key", "c")


def test_conflicting_object_ids_are_a_provider_bug() -> None:
    with pytest.raises(ProviderError) as caught:
        build_response([f("a", object_id="x", spec="1"), f("b", object_id="x", spec="2")], 0o644, KEY)
    assert caught.value.kind is ErrorKind.INTERNAL


def test_no_files_is_an_error() -> None:
    with pytest.raises(ProviderError) as caught:
        build_response([], 0o644, KEY)
    assert caught.value.kind is ErrorKind.INVALID_ARGUMENT


def test_size_limit_names_the_largest_objects() -> None:
    big = [f("big1", b"x" * (2 * 1024 * 1024)), f("big2", b"y" * (2 * 1024 * 1024 + 10)), f("small", b"z")]
    with pytest.raises(ProviderError) as caught:
        build_response(big, 0o644, KEY)
    assert caught.value.kind is ErrorKind.RESOURCE_EXHAUSTED
    assert "'big2'" in caught.value.message and "'big1'" in caught.value.message
    assert str(MAX_RESPONSE_BYTES) in caught.value.message


def test_just_under_the_limit_passes() -> None:
    response, _ = build_response([f("a", b"x" * (MAX_RESPONSE_BYTES - 1024))], 0o644, KEY)
    assert response.ByteSize() <= MAX_RESPONSE_BYTES


def test_version_key_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "key").write_bytes(b"0123456789abcdef0123456789abcdef\n")
    key = VersionKey.from_file(str(tmp_path / "key"))
    assert key.object_version("s", [f("a")]) == VersionKey(b"0123456789abcdef0123456789abcdef", "x").object_version(
        "s", [f("a")])
    (tmp_path / "short").write_bytes(b"short")
    with pytest.raises(ValueError, match="shorter"):
        VersionKey.from_file(str(tmp_path / "short"))
    assert "0123" not in repr(key)
