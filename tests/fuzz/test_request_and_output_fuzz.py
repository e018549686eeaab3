"""Property tests: whatever the driver (or an SPC author) sends, the answer is a clean INVALID_ARGUMENT or
files whose paths pass the driver's rules and stay inside the mount. Never a crash or another error kind.

`make test` runs 10,000+ generated cases in total (test_generated_case_count.py checks it); `make fuzz`
(HYPOTHESIS_PROFILE=long) 25 times as many.
"""

from __future__ import annotations

import json
import os
import posixpath

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from provider.errors import ErrorKind, ProviderError
from provider.files import SecretFile, VersionKey
from provider.paths import path_problem
from provider.request import SERVICE_ACCOUNT_TOKENS, parse_mount_request
from provider.wire import build_response
from tests.fuzz.budget import examples, ran

pytestmark = pytest.mark.fuzz
KEY = VersionKey(b"f" * 32, "fuzz")
MOUNT = "/mnt/secrets-store"

# Name material biased toward what breaks paths: dots, slashes, NULs, long runs, unicode.
PATH_ALPHABET = st.sampled_from(["/", ".", "..", "a", "b", "\x00", "\\", " ", "é", "~", "-", "_", "data", "\n"])
hostile_names = st.one_of(
    st.lists(PATH_ALPHABET, max_size=12).map("".join),
    st.text(max_size=40),
    st.integers(1, 300).map(lambda n: "x" * n),
    st.lists(st.sampled_from(["a", "..", ".", "", "..data", "b" * 256]), max_size=6).map("/".join),
)
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=10))
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=8,
)


def stays_inside(path: str) -> bool:
    return posixpath.normpath(posixpath.join(MOUNT, path)).startswith(MOUNT + "/")


@settings(max_examples=examples(4000), deadline=None)
@given(
    names=st.lists(hostile_names, min_size=1, max_size=6),
    modes=st.lists(st.one_of(st.none(), st.integers(-5, 5000)), min_size=6, max_size=6),
)
def test_output_accepts_only_safe_paths(names: list[str], modes: list[int | None]) -> None:
    ran("test_output_accepts_only_safe_paths")
    files = [SecretFile(n, b"v", f"obj{i}", f"spec{i}", mode=modes[i]) for i, n in enumerate(names)]
    try:
        response, _ = build_response(files, 0o644, KEY)
    except ProviderError as exc:
        assert exc.kind is ErrorKind.INVALID_ARGUMENT, exc.message
        return
    paths = [f.path for f in response.files]
    assert len(set(paths)) == len(paths)
    for item in response.files:
        assert path_problem(item.path) is None
        assert stays_inside(item.path)
        assert 0 <= item.mode <= 0o777
        assert not any(other.startswith(item.path + "/") for other in paths)
    assert response.object_version


@settings(max_examples=examples(4000), deadline=None)
@given(
    attributes=st.one_of(
        st.dictionaries(st.text(max_size=20), st.text(max_size=20), max_size=6).map(json.dumps),
        st.dictionaries(st.text(max_size=8), json_values, max_size=4).map(json.dumps),
        json_values.map(json.dumps),
        st.text(max_size=40),
    ),
    secrets=st.one_of(st.just("null"), st.just("{}"), st.text(max_size=30),
                      st.dictionaries(st.text(max_size=8), json_values, max_size=3).map(json.dumps)),
    permission=st.one_of(st.integers(-10, 1000).map(str), st.text(max_size=6), json_values.map(json.dumps)),
    tokens=st.one_of(st.none(), st.text(max_size=30), json_values.map(json.dumps),
                     st.dictionaries(st.text(max_size=6), st.fixed_dictionaries({"token": st.text(max_size=10)}),
                                     max_size=3).map(json.dumps)),
)
def test_request_parsing_never_crashes(attributes: str, secrets: str, permission: str, tokens: str | None) -> None:
    ran("test_request_parsing_never_crashes")
    if tokens is not None and attributes.startswith("{"):
        try:
            decoded = json.loads(attributes)
        except ValueError:
            decoded = None
        if isinstance(decoded, dict):
            decoded[SERVICE_ACCOUNT_TOKENS] = tokens
            attributes = json.dumps(decoded)
    try:
        ctx = parse_mount_request(attributes, secrets, permission, "/t")
    except ProviderError as exc:
        assert exc.kind is ErrorKind.INVALID_ARGUMENT
        assert "Traceback" not in exc.message
        return
    assert 0 <= ctx.default_mode <= 0o777
    assert all(isinstance(v, str) for v in ctx.parameters.values())
    assert all(isinstance(v, str) for v in ctx.secrets.values())
    assert not any(k.startswith("csi.storage.k8s.io/") for k in ctx.parameters)


@settings(max_examples=examples(2500), deadline=None)
@given(path=hostile_names)
def test_path_rules_agree_with_a_second_reading(path: str) -> None:
    """An independent statement of contract §3.1 (plus NUL, which no filesystem takes)."""
    ran("test_path_rules_agree_with_a_second_reading")
    elements = path.split("/")
    expected_ok = (
        path != ""
        and "\x00" not in path
        and not path.startswith("/")
        and len(path.encode("utf-8", "surrogateescape")) <= 4096
        and ".." not in elements
        and all(len(e.encode("utf-8", "surrogateescape")) <= 255 for e in elements)
        and not (elements[0].startswith("..") and len(elements[0]) > 2)
        and os.path.normpath(path) == path
        and path != "."
    )
    assert (path_problem(path) is None) == expected_ok
    if expected_ok:
        assert stays_inside(path)
