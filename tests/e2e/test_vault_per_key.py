"""`secretKey: "*"` through the socket against OpenBao: every key of a secret as its own file under the
directory objectName (vault-csi-provider #203, #192), KV v2 and KV v1, rendered like secretKey values."""

from __future__ import annotations

import uuid

import grpc
import pytest
import yaml

from tests.e2e.test_vault_mount import contents, failure, mount, new_pod
from tests.support.daemon import Daemon
from tests.support.openbao import KV1, KV2, Cluster, leaks, vault_spc


def spc(*objects: dict[str, object], **parameters: str) -> dict[str, object]:
    return vault_spc(yaml.safe_dump(list(objects)), roleName="kv-role", **parameters)


def fresh_secret(cluster: Cluster, data: dict[str, object]) -> str:
    """A KV v2 secret of its own (tests that write must not disturb the shared ones); its secretPath."""
    name = f"per-key-{uuid.uuid4().hex[:8]}"
    cluster.bao.api("POST", f"secret/data/{name}", {"data": data})
    return f"secret/data/{name}"


@pytest.mark.parametrize(
    ("secret_path", "secret"),
    [("secret/data/typed", KV2["typed"]), ("kv1/app", KV1["app"])],
    ids=["kv2", "kv1"],
)
def test_every_key_is_a_file_with_the_bytes_its_secret_key_object_gets(
    vault_daemon: Daemon, cluster: Cluster, secret_path: str, secret: dict[str, object]
) -> None:
    # KV v2 keys come from data.data (not the metadata), KV v1 keys from data ("data" is a plain key there).
    singles = [{"objectName": f"single-{key}", "secretPath": secret_path, "secretKey": key} for key in secret]
    files = contents(mount(vault_daemon, cluster, spc({"objectName": "all", "secretPath": secret_path,
                                                       "secretKey": "*"}, *singles), new_pod()))
    per_key = {path.removeprefix("all/"): data for path, data in files.items() if path.startswith("all/")}
    assert per_key == {key: files[f"single-{key}"] for key in secret}
    if secret_path == "secret/data/typed":
        assert (per_key["count"], per_key["ratio"], per_key["html"]) == (b"10", b"1.5", b"<a&b>")
        assert per_key["nested"] == b'{"bar":"hop","baz":"zap","cheeses":{"brie":9,"cheddar":"8"}}'


def test_encoding_and_file_permission_apply_to_each_key(vault_daemon: Daemon, cluster: Cluster) -> None:
    path = fresh_secret(cluster, {"a": "aGVsbG8=", "b": "d29ybGQ="})
    response = mount(vault_daemon, cluster, spc({"objectName": "certs/decoded", "secretPath": path, "secretKey": "*",
                                                 "encoding": "base64", "filePermission": "0600"}), new_pod())
    assert contents(response) == {"certs/decoded/a": b"hello", "certs/decoded/b": b"world"}
    assert {f.mode for f in response.files} == {0o600}


def test_one_id_and_version_per_object_which_follows_every_key(vault_daemon: Daemon, cluster: Cluster) -> None:
    path = fresh_secret(cluster, {"user": "app", "password": "first-password-7d1e"})
    document = spc({"objectName": "db", "secretPath": path, "secretKey": "*"})
    pod = new_pod()

    def poll() -> tuple[dict[str, bytes], dict[str, str]]:
        response = mount(vault_daemon, cluster, document, pod)
        return contents(response), {v.id: v.version for v in response.object_version}

    first, again = poll(), poll()
    assert list(first[1]) == ["db"] and first == again
    cluster.bao.api("POST", path, {"data": {"user": "app", "password": "second-password-7d1e"}})
    changed = poll()
    assert changed[0]["db/password"] == b"second-password-7d1e" and changed[1]["db"] != first[1]["db"]
    cluster.bao.api("POST", path, {"data": {"user": "app", "password": "second-password-7d1e", "port": 5432}})
    added = poll()
    assert sorted(added[0]) == ["db/password", "db/port", "db/user"] and added[1]["db"] != changed[1]["db"]


def test_templates_refer_to_per_key_files(vault_daemon: Daemon, cluster: Cluster) -> None:
    document = spc({"objectName": "app", "secretPath": "kv1/app", "secretKey": "*"},
                   templates=yaml.safe_dump([{"fileName": "login", "keepSources": False,
                                              "template": "{{ app/username }}:{{ app/password }}"}]))
    files = contents(mount(vault_daemon, cluster, document, new_pod()))
    assert files == {"app/data": b"string data", "login": f"{KV1['app']['username']}:{KV1['app']['password']}".encode()}


def test_objects_without_the_star_are_unchanged(vault_daemon: Daemon, cluster: Cluster) -> None:
    files = contents(mount(vault_daemon, cluster, spc({"objectName": "db", "secretPath": "kv1/app",
                                                       "secretKey": "username"}), new_pod()))
    assert files == {"db": KV1["app"]["username"].encode()}


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"ok": "x", "a/b": "x"}, "key 'a/b' cannot be a file name: it contains '/'"),
        ({"..": "x"}, "key '..' cannot be a file name: it is '..'"),
        ({".": "x"}, "key '.' cannot be a file name: it is '.'"),
        ({"": "x"}, "key '' cannot be a file name: it is empty"),
        ({"k" * 300: "x"}, "has an element longer than 255 bytes"),
    ],
)
def test_keys_that_cannot_be_file_names_fail_the_mount(vault_daemon: Daemon, cluster: Cluster,
                                                       data: dict[str, str], words: str) -> None:
    path = fresh_secret(cluster, data)
    error = failure(vault_daemon, cluster, spc({"objectName": "cfg", "secretPath": path, "secretKey": "*"}),
                    new_pod())
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert words in error.details() and "object 'cfg'" in error.details() and path in error.details()


@pytest.mark.parametrize(
    ("objects", "code", "words"),
    [
        ([{"objectName": "m", "secretPath": "secret/data/marker", "secretKey": "*", "encoding": "base64"}],
         grpc.StatusCode.INVALID_ARGUMENT, "key 'value': the value is not valid base64"),
        ([{"objectName": "app", "secretPath": "kv1/app", "secretKey": "*"},
          {"objectName": "app/username", "secretPath": "kv1/app", "secretKey": "username"}],
         grpc.StatusCode.INVALID_ARGUMENT, "both write the file 'app/username'"),
        ([{"objectName": "x", "secretPath": "secret/data/no-such-secret", "secretKey": "*"}],
         grpc.StatusCode.NOT_FOUND, "no secret at GET /v1/secret/data/no-such-secret"),
    ],
)
def test_failures_name_the_object_and_never_the_value(vault_daemon: Daemon, cluster: Cluster,
                                                      objects: list[dict[str, object]], code: grpc.StatusCode,
                                                      words: str) -> None:
    error = failure(vault_daemon, cluster, spc(*objects), new_pod())
    assert error.code() is code and words in error.details()
    assert leaks(error.details(), cluster) == []
    assert leaks(vault_daemon.logs(), cluster) == []


def test_a_secret_without_keys_is_not_found(vault_daemon: Daemon, cluster: Cluster) -> None:
    path = fresh_secret(cluster, {})
    error = failure(vault_daemon, cluster, spc({"objectName": "e", "secretPath": path, "secretKey": "*"}), new_pod())
    assert error.code() is grpc.StatusCode.NOT_FOUND and "the secret has no keys" in error.details()
