"""paths.py: the one clash rule that output.py and both backends' plan checks use."""

from __future__ import annotations

import pytest

from provider.paths import PathClaim, path_clashes


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        ([("a", False), ("b", False)], []),
        ([("a", False), ("a", False)], [("a", "a", True)]),
        ([("a", False), ("a/b", False)], [("a", "a/b", False)]),
        ([("a/b/c", False), ("a", False)], [("a", "a/b/c", False)]),
        ([("a", True), ("a/b", False)], [("a", "a/b", False)]),  # a directory claim is reported; caller decides
        ([("a", False), ("a/b", False), ("a/b/c", False)], [("a", "a/b", False), ("a", "a/b/c", False),
                                                             ("a/b", "a/b/c", False)]),
        ([("ab", False), ("a/b", False)], []),
        # duplicates first, in claim order, then parents from the top down; a second claim is not a parent
        ([("x/y", False), ("x", False), ("x", False)], [("x", "x", True), ("x", "x/y", False)]),
    ],
)
def test_path_clashes(claims: list[tuple[str, bool]], expected: list[tuple[str, str, bool]]) -> None:
    found = path_clashes(PathClaim(path, index, directory) for index, (path, directory) in enumerate(claims))
    assert [(c.taken, c.claim.path, c.duplicate) for c in found] == expected
