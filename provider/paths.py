"""The driver's path rules for output files (contract §3.1), and the one rule for paths that clash.

`path_problem` says why the driver (or its writer) would refuse a path. `path_clashes` finds two claims
on one path and a file where another claim needs a directory (`a` and `a/b`, which the driver's writer
fails on half-way): output.py runs it over the files of a mount, and each backend over its objects at
plan time, so a clash fails before any backend call.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from provider.errors import echo, invalid
from provider.limits import MAX_ELEMENT_BYTES, MAX_PATH_BYTES

T = TypeVar("T")


def path_problem(path: str) -> str | None:
    """Why the driver (or its writer) would refuse this relative path; None when it is acceptable."""
    if path == "":
        return "is empty"
    if "\x00" in path:
        return "contains a NUL byte"
    if path.startswith("/"):
        return "is absolute"
    encoded = path.encode("utf-8", "surrogateescape")
    if len(encoded) > MAX_PATH_BYTES:
        return f"is longer than {MAX_PATH_BYTES} bytes"
    elements = path.split("/")
    if any(element == ".." for element in elements):
        return "has a '..' element"
    if any(len(element.encode("utf-8", "surrogateescape")) > MAX_ELEMENT_BYTES for element in elements):
        return f"has an element longer than {MAX_ELEMENT_BYTES} bytes"
    if elements[0].startswith("..") and len(elements[0]) > 2:
        return "starts with '..', which the driver reserves for its own ..data directories"
    if os.path.normpath(path) != path or path == ".":
        return "is not a clean path (no './', '//', trailing '/' or '.' elements)"
    return None


def validate_path(path: str, object_id: str) -> None:
    problem = path_problem(path)
    if problem is not None:
        raise invalid(f"object {echo(object_id)}: output path {echo(path)} {problem}")


@dataclass(frozen=True)
class PathClaim(Generic[T]):
    """`owner` writes `path`: a file, or a directory of files (`directory`) that only the owner fills."""

    path: str
    owner: T
    directory: bool = False


@dataclass(frozen=True)
class Clash(Generic[T]):
    """`claim` cannot have its path because `holder` has `taken`: the same path, or one of its parents."""

    holder: PathClaim[T]
    claim: PathClaim[T]

    @property
    def taken(self) -> str:
        return self.holder.path

    @property
    def duplicate(self) -> bool:
        return self.holder.path == self.claim.path


def path_clashes(claims: Iterable[PathClaim[T]]) -> Iterator[Clash[T]]:
    """Every clash, lazily: each second claim on a path as it comes, then, for each first claim in order,
    each claimed parent from the top down. A directory claim is reported as a parent too; whether that
    is a problem (a directory a backend fills itself) is the caller's to say."""
    first: dict[str, PathClaim[T]] = {}
    for claim in claims:
        if claim.path in first:
            yield Clash(first[claim.path], claim)
            continue
        first[claim.path] = claim
    for claim in first.values():
        parts = claim.path.split("/")
        for depth in range(1, len(parts)):
            holder = first.get("/".join(parts[:depth]))
            if holder is not None:
                yield Clash(holder, claim)
