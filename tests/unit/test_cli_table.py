"""`mount`'s table: which object id each file belongs to, where the id shows it."""

from __future__ import annotations

import pytest

from provider.cli import linked_object

VERSIONS = {"db-password": "v1", "db": "v2", "db/extra": "v3", "template/.pgpass": "v4", "secret/s1": "v5"}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("db-password", "db-password"),  # Vault: the id is the path
        ("db/user", "db"),  # Vault secretKey "*": the id is the directory
        ("db/extra", "db/extra"),
        ("db/extra/deeper", "db/extra"),  # the nearest directory that is an object
        (".pgpass", "template/.pgpass"),
        ("s1", ""),  # Azure: ids are <type>/<name>, not paths
        ("dbx", ""),
    ],
)
def test_linked_object(path: str, expected: str) -> None:
    assert linked_object(path, VERSIONS) == expected
