"""The daemon through its sockets, called exactly as the driver calls it (contract §8 scenarios).

These use the test backend (tests/support/test_backend.py), so they exercise the server, request,
output and signal handling without a secret store.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
import yaml

from provider.localdriver import (
    PodIdentity,
    build_mount_request,
    call_mount,
    call_version,
    check_response,
    write_payload,
)
from tests.support.daemon import Daemon, start_daemon

POD = PodIdentity.named("web-0", "shop", "web")


def spc(object_list: list[dict[str, object]] | None = None, **parameters: str) -> dict[str, object]:
    params = dict(parameters)
    if object_list is not None:
        params["objects"] = yaml.safe_dump(object_list)
    return {"kind": "SecretProviderClass", "metadata": {"name": "test-spc"},
            "spec": {"provider": "test", "parameters": params}}


TWO = [{"objectName": "foo", "value": "secret"}, {"objectName": "fookey", "value": "-----BEGIN PUBLIC KEY-----"}]


@pytest.fixture
def daemon(daemon_factory: Callable[..., Daemon]) -> Daemon:
    return daemon_factory(["test", "vault", "azure"])


def mount(daemon: Daemon, spc_doc: dict[str, object], pod: PodIdentity = POD, timeout: float = 30, **kw: object):  # type: ignore[no-untyped-def]
    return call_mount(daemon.socket_path("test"), build_mount_request(spc_doc, pod, **kw), timeout=timeout)  # type: ignore[arg-type]


def rpc_error(call: Callable[[], object]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


def test_c1_version_on_every_socket(daemon: Daemon) -> None:
    for name in ("test", "vault", "azure"):
        answer = call_version(daemon.socket_path(name))
        assert (answer.version, answer.runtime_name) == ("v1alpha1", "secrets-store-csi-provider")
        assert len(answer.runtime_version.split(".")) == 3


def test_sockets_are_private(daemon: Daemon) -> None:
    for name in ("test", "vault", "azure"):
        mode = os.stat(daemon.socket_path(name)).st_mode
        assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600


@pytest.mark.parametrize("secrets", [None, {}])
def test_c2_c3_basic_mount(daemon: Daemon, tmp_path: Path, secrets: dict[str, str] | None) -> None:
    answer = mount(daemon, spc(TWO), secrets=secrets)
    check_response(answer)
    assert answer.error.code == ""
    assert [(f.path, f.contents, f.mode) for f in answer.files] == [
        ("foo", b"secret", 420), ("fookey", b"-----BEGIN PUBLIC KEY-----", 420)]
    assert [v.id for v in answer.object_version] == ["foo", "fookey"]
    assert all(v.version for v in answer.object_version)
    assert write_payload(str(tmp_path / "mnt"), answer)
    assert (tmp_path / "mnt" / "foo").read_bytes() == b"secret"
    assert not os.path.exists(f"/var/lib/kubelet/pods/{POD.uid}"), "the provider never touches target_path"


def test_c4_secrets_as_empty_object(daemon: Daemon) -> None:
    request = build_mount_request(spc(TWO), POD)
    request.secrets = "{}"
    assert len(call_mount(daemon.socket_path("test"), request).files) == 2


def test_c5_node_publish_secret_values_are_raw(daemon: Daemon) -> None:
    answer = mount(daemon, spc(TWO, echoSecret="clientsecret"), secrets={"clientsecret": "c2VjcmV0=="})
    assert {f.path: f.contents for f in answer.files}["secret-value"] == b"c2VjcmV0=="


def test_c6_c8_tokens_in_attributes_and_in_secrets(daemon: Daemon) -> None:
    tokens = {"aud1": "a.b.c", "test-aud": "d.e.f", "": "g.h.i"}
    for in_secrets in (False, True):
        answer = mount(daemon, spc(TWO, requireAudience="test-aud"), tokens=tokens, tokens_in_secrets=in_secrets)
        assert len(answer.files) == 2


def test_c7_missing_token_fails_clearly(daemon: Daemon) -> None:
    error = rpc_error(lambda: mount(daemon, spc(TWO, requireAudience="test-aud"), tokens={"aud1": "a.b.c"}))
    assert error.code() is grpc.StatusCode.UNAUTHENTICATED
    assert "test-aud" in error.details()


def test_c9_unknown_attributes_are_ignored(daemon: Daemon) -> None:
    answer = mount(daemon, spc(TWO), volume_attributes={"providerName": "test", "random": "x"})
    assert len(answer.files) == 2


@pytest.mark.parametrize(
    ("parameters", "code"),
    [
        ({"objects": "- objectName: [unclosed"}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"objects": "[]"}, grpc.StatusCode.INVALID_ARGUMENT),  # C26: empty object list
        ({"failWith": "NOT_FOUND"}, grpc.StatusCode.NOT_FOUND),  # C11
        ({"failWith": "PERMISSION_DENIED"}, grpc.StatusCode.PERMISSION_DENIED),
        ({"failWith": "UNAVAILABLE"}, grpc.StatusCode.UNAVAILABLE),
    ],
)
def test_c10_c11_c26_failures_are_whole(daemon: Daemon, parameters: dict[str, str], code: grpc.StatusCode) -> None:
    error = rpc_error(lambda: mount(daemon, spc(None, **parameters)))
    assert error.code() is code


def test_c12_nested_paths(daemon: Daemon, tmp_path: Path) -> None:
    answer = mount(daemon, spc([{"objectName": "nested/foo", "value": "n"}]))
    write_payload(str(tmp_path), answer)
    assert (tmp_path / "nested" / "foo").read_bytes() == b"n"


@pytest.mark.parametrize("name", ["../x", "/etc/x", "..data", "a/./b", "a//b", "a/", "a" * 256, "x/../../y"])
def test_c13_hostile_names_are_refused(daemon: Daemon, name: str) -> None:
    objects = [{"objectName": "ok", "value": "1"}, {"objectName": name, "value": "2"}]
    error = rpc_error(lambda: mount(daemon, spc(objects)))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "output path" in error.details()


@pytest.mark.parametrize(
    ("objects", "message"),
    [
        ([{"objectName": "a", "value": "1"}, {"objectName": "b", "path": "a", "value": "2"}], "both write the file"),
        ([{"objectName": "a", "value": "1"}, {"objectName": "a/b", "value": "2"}], "to be a directory"),
    ],
)
def test_c14_c15_collisions_are_refused(daemon: Daemon, objects: list[dict[str, object]], message: str) -> None:
    error = rpc_error(lambda: mount(daemon, spc(objects)))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT and message in error.details()


def test_c16_c17_modes(daemon: Daemon) -> None:
    objects = [{"objectName": "a", "value": "1"}, {"objectName": "b", "value": "2", "filePermission": "0600"}]
    assert [f.mode for f in mount(daemon, spc(objects)).files] == [420, 384]
    assert [f.mode for f in mount(daemon, spc(objects), permission=0o400).files] == [256, 384]


def test_c18_binary_contents_are_exact(daemon: Daemon) -> None:
    data = bytes(range(256)) * 4
    answer = mount(daemon, spc([{"objectName": "bin", "valueBase64": base64.b64encode(data).decode()}]))
    assert answer.files[0].contents == data


def test_c19_large_responses(daemon: Daemon) -> None:
    chunk = base64.b64encode(b"\xab" * 1024).decode()
    three = [{"objectName": f"o{i}", "valueBase64": chunk, "repeat": 1300} for i in range(3)]  # ~3.8 MiB
    assert sum(len(f.contents) for f in mount(daemon, spc(three)).files) == 3 * 1300 * 1024
    error = rpc_error(lambda: mount(daemon, spc([*three, {"objectName": "o3", "valueBase64": chunk, "repeat": 1300}])))
    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "largest objects" in error.details() and "'o0'" in error.details()
    assert "over 1 MiB" in daemon.logs()


def test_c20_c22_same_request_same_answer(daemon: Daemon) -> None:
    first = mount(daemon, spc(TWO))
    request = build_mount_request(spc(TWO), POD)
    request.current_object_version.extend(first.object_version)
    second = call_mount(daemon.socket_path("test"), request)
    assert first == second


def test_c21_changed_value_changes_only_its_version(daemon: Daemon) -> None:
    first = {v.id: v.version for v in mount(daemon, spc(TWO)).object_version}
    changed = [TWO[0] | {"value": "rotated"}, TWO[1]]
    second = {v.id: v.version for v in mount(daemon, spc(changed)).object_version}
    assert first["foo"] != second["foo"] and first["fookey"] == second["fookey"]


def test_c23_removed_object_is_absent(daemon: Daemon) -> None:
    assert [f.path for f in mount(daemon, spc(TWO[:1])).files] == ["foo"]


def test_c24_parallel_mounts_do_not_leak(daemon: Daemon) -> None:
    results: dict[int, str] = {}

    def one(i: int) -> None:
        pod = PodIdentity.named(f"pod-{i}", f"ns-{i % 4}", f"sa-{i}")
        answer = mount(daemon, spc([{"objectName": "v", "value": f"value-{i}"}], echoPod="true"), pod=pod)
        files = {f.path: f.contents.decode() for f in answer.files}
        assert files["v"] == f"value-{i}"
        results[i] = files["pod-info"]

    threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 20
    for i, info in results.items():
        pod = PodIdentity.named(f"pod-{i}", f"ns-{i % 4}", f"sa-{i}")
        assert info == f"{pod.namespace}/{pod.name}/{pod.uid}/{pod.service_account}"


def test_c25_deadline_is_honoured_and_the_next_call_works(daemon: Daemon) -> None:
    started = time.monotonic()
    error = rpc_error(lambda: mount(daemon, spc(TWO, delaySeconds="30"), timeout=2))
    assert error.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 5
    assert len(mount(daemon, spc(TWO)).files) == 2


def test_unbuilt_backend_answers_unimplemented(daemon_factory: Callable[..., Daemon]) -> None:
    daemon = daemon_factory(["test", "absent"])
    assert call_version(daemon.socket_path("absent")).version == "v1alpha1"
    request = build_mount_request({**spc(TWO), "spec": {"provider": "absent", "parameters": {"x": "y"}}}, POD)
    error = rpc_error(lambda: call_mount(daemon.socket_path("absent"), request, timeout=10))
    assert error.code() is grpc.StatusCode.UNIMPLEMENTED
    assert "'absent' backend is not part of this build" in error.details()


def test_internal_errors_send_no_traceback(daemon: Daemon) -> None:
    error = rpc_error(lambda: mount(daemon, spc([{"value": "no objectName"}])))
    assert error.code() is grpc.StatusCode.INTERNAL
    assert "Traceback" not in error.details() and "provider log" in error.details()
    assert "Traceback" in daemon.logs() or "KeyError" in daemon.logs()


def test_mount_errors_are_logged_as_json(daemon: Daemon) -> None:
    rpc_error(lambda: mount(daemon, spc(None, failWith="NOT_FOUND")))
    records = [json.loads(line) for line in daemon.logs().splitlines() if line.startswith("{")]
    failed = [r for r in records if r["message"] == "mount failed"]
    assert failed and failed[-1]["errorKind"] == "NotFound" and failed[-1]["pod"]["name"] == "web-0"
    assert {"time", "level", "logger", "message"} <= set(failed[-1])


def test_stale_socket_and_leftover_file_are_replaced(tmp_path: Path) -> None:
    provider_dir = tmp_path / "providers"
    provider_dir.mkdir()
    (provider_dir / "test.sock").write_text("leftover regular file")
    with start_daemon(provider_dir, ["test"]) as first:
        call_version(first.socket_path("test"))
        first.process.kill()  # leaves the socket behind, like a crash
        first.process.wait()
    assert os.path.exists(provider_dir / "test.sock")
    with start_daemon(provider_dir, ["test"]) as second:
        assert call_version(second.socket_path("test")).version == "v1alpha1"


def test_sigterm_exits_zero_and_removes_sockets(tmp_path: Path) -> None:
    daemon = start_daemon(tmp_path / "p", ["test", "vault", "azure"])
    ready = daemon.wait_ready()
    assert ready < 5  # the 1.5 s target is measured by `make bench`, not asserted here
    assert daemon.stop() == 0
    assert sorted(os.listdir(tmp_path / "p")) == []


def test_sigterm_lets_in_flight_mounts_finish(tmp_path: Path) -> None:
    daemon = start_daemon(tmp_path / "p", ["test"], extra_args=["--grace-seconds", "10"])
    daemon.wait_ready()
    outcome: dict[str, object] = {}

    def slow_mount() -> None:
        try:
            outcome["files"] = len(mount(daemon, spc(TWO, delaySeconds="1.5")).files)
        except grpc.RpcError as exc:
            outcome["error"] = exc.code()

    worker = threading.Thread(target=slow_mount)
    worker.start()
    time.sleep(0.5)
    daemon.process.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    daemon.process.send_signal(signal.SIGTERM)  # a repeated signal during shutdown changes nothing
    worker.join(15)
    assert outcome == {"files": 2}
    assert daemon.stop() == 0
    assert not os.path.exists(daemon.socket_path("test"))


def test_same_version_key_gives_same_versions_across_restarts(tmp_path: Path) -> None:
    key = tmp_path / "version-key"
    key.write_bytes(os.urandom(32).hex().encode())
    versions = []
    for run in range(2):
        with start_daemon(tmp_path / f"p{run}", ["test"], extra_args=["--version-key-file", str(key)]) as d:
            versions.append([v.version for v in mount(d, spc(TWO)).object_version])
    with start_daemon(tmp_path / "p-random", ["test"]) as d:
        versions.append([v.version for v in mount(d, spc(TWO)).object_version])
        assert "random per-process key" in d.logs()
    assert versions[0] == versions[1] != versions[2]
