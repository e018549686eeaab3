"""localdriver.py: requests built exactly like driver v1.6, the driver's response checks, the atomic writer."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from provider._proto import v1alpha1_pb2 as pb
from provider.gojson import go_json
from provider.localdriver import (
    DriverRejection,
    PodIdentity,
    build_mount_request,
    check_response,
    mounted_files,
    write_payload,
)

SPC = {
    "apiVersion": "secrets-store.csi.x-k8s.io/v1",
    "kind": "SecretProviderClass",
    "metadata": {"name": "app-secrets"},
    "spec": {"provider": "vault", "parameters": {"roleName": "app", "objects": "- objectName: a\n"}},
}
POD = PodIdentity(name="web-0", namespace="shop", uid="d448c6a2-cda8-42e3-84fb-3cf75faa8399", service_account="web")


def test_request_shape_matches_the_driver() -> None:
    request = build_mount_request(SPC, POD, volume_attributes={"providerName": "vault", "roleName": "override"})
    assert request.secrets == "null"
    assert request.permission == "420"
    volume = "volumes/kubernetes.io~csi/secrets-store-inline/mount"
    assert request.target_path == f"/var/lib/kubelet/pods/{POD.uid}/{volume}"
    attributes = json.loads(request.attributes)
    assert list(attributes) == sorted(attributes), "Go writes map keys sorted"
    assert request.attributes == json.dumps(attributes, sort_keys=True, separators=(",", ":")), "compact"
    assert attributes == {
        "csi.storage.k8s.io/ephemeral": "true",
        "csi.storage.k8s.io/pod.name": "web-0",
        "csi.storage.k8s.io/pod.namespace": "shop",
        "csi.storage.k8s.io/pod.uid": POD.uid,
        "csi.storage.k8s.io/serviceAccount.name": "web",
        "objects": "- objectName: a\n",
        "providerName": "vault",
        "roleName": "override",
        "secretProviderClass": "app-secrets",
    }


def test_tokens_are_double_encoded_and_optionally_in_secrets() -> None:
    request = build_mount_request(SPC, POD, tokens={"vault": "tok.a.b", "": "tok.c.d"}, secrets={"k": "v"},
                                  tokens_in_secrets=True, permission=0o400)
    encoded = json.loads(request.attributes)["csi.storage.k8s.io/serviceAccount.tokens"]
    assert isinstance(encoded, str)
    tokens = json.loads(encoded)
    assert tokens["vault"]["token"] == "tok.a.b" and tokens[""]["token"] == "tok.c.d"
    assert tokens["vault"]["expirationTimestamp"].endswith("Z")
    assert json.loads(request.secrets) == {"csi.storage.k8s.io/serviceAccount.tokens": encoded, "k": "v"}
    assert request.permission == "256"


def test_go_json_escapes_like_encoding_json() -> None:
    assert go_json({"b": "<a&b>", "a": "é"}) == '{"a":"é","b":"\\u003ca\\u0026b\\u003e"}'


@pytest.mark.parametrize(
    ("spc", "message"),
    [
        ({**SPC, "kind": "Pod"}, "expected a SecretProviderClass"),
        ({**SPC, "spec": {"provider": "", "parameters": {"a": "b"}}}, "spec.provider is empty"),
        ({**SPC, "spec": {"provider": "vault", "parameters": {}}}, "parameters not set"),
        ({**SPC, "spec": {"provider": "vault", "parameters": {"n": 5}}}, "must be a string"),
    ],
)
def test_driver_preconditions(spc: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(DriverRejection, match=message):
        build_mount_request(spc, POD)


def response(*files: tuple[str, bytes, int], versions: tuple[str, ...] = ("x",)) -> pb.MountResponse:
    return pb.MountResponse(
        files=[pb.File(path=p, contents=c, mode=m) for p, c, m in files],
        object_version=[pb.ObjectVersion(id=v, version="1") for v in versions],
    )


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (pb.MountResponse(error=pb.Error(code="Boom"), object_version=[pb.ObjectVersion(id="a")]), "error code Boom"),
        (response(("a", b"x", 420), versions=()), "missing object versions"),
        (response(("../a", b"x", 420)), "invalid file path"),
        (response(("a/", b"x", 420)), "invalid file path"),
    ],
)
def test_driver_response_checks(answer: pb.MountResponse, message: str) -> None:
    with pytest.raises(DriverRejection, match=message):
        check_response(answer)


def test_atomic_writer_layout_rewrite_and_removal(tmp_path: Path) -> None:
    target = tmp_path / "mount"
    assert write_payload(str(target), response(("foo", b"1", 0o640), ("nested/bar", b"2", 0o600)))
    assert os.path.islink(target / "..data") and os.path.islink(target / "foo") and os.path.islink(target / "nested")
    assert os.readlink(target / "foo") == "..data/foo"
    assert (target / "foo").read_bytes() == b"1" and (target / "nested" / "bar").read_bytes() == b"2"
    assert oct((target / "..data" / "foo").stat().st_mode & 0o777) == oct(0o640)
    assert set(mounted_files(str(target))) == {"foo", "nested/bar"}
    first_dir = os.path.realpath(target / "..data")

    assert not write_payload(str(target), response(("foo", b"1", 0o644), ("nested/bar", b"2", 0o600))), \
        "a change of mode only does not rewrite"
    assert write_payload(str(target), response(("foo", b"changed", 0o644)))
    assert not os.path.exists(target / "nested"), "paths missing from the payload are removed"
    assert not os.path.exists(first_dir), "the old timestamped dir is deleted"
    assert set(mounted_files(str(target))) == {"foo"}
    assert (target / "foo").read_bytes() == b"changed"
