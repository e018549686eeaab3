"""Whole-response files (no secretKey) through the socket against OpenBao: an unchanged secret keeps its
bytes and version across rotation polls, a changed one gets new ones (vault-csi-provider #474).

OpenBao's answers to two reads of an unchanged KV secret differ only in `request_id`; the file leaves it
empty, so nothing volatile reaches the bytes the version is computed from.
"""

from __future__ import annotations

import json
import uuid

import pytest
import yaml

from provider.localdriver import PodIdentity
from tests.e2e.test_vault_mount import contents, mount, new_pod
from tests.support.daemon import Daemon
from tests.support.openbao import Cluster, vault_spc


def write(cluster: Cluster, secret_path: str, data: dict[str, str]) -> None:
    """KV v2 paths take {"data": ...}, KV v1 paths the map itself."""
    cluster.bao.api("POST", secret_path, {"data": data} if secret_path.startswith("secret/data/") else data)


def poll(daemon: Daemon, cluster: Cluster, secret_path: str, pod: PodIdentity) -> tuple[bytes, str]:
    spc = vault_spc(yaml.safe_dump([{"objectName": "whole", "secretPath": secret_path}]), roleName="kv-role")
    response = mount(daemon, cluster, spc, pod)
    (version,) = response.object_version
    return contents(response)["whole"], version.version


@pytest.mark.parametrize("kind", ["kv2", "kv2-pinned", "kv1"])
def test_unchanged_secret_same_bytes_and_version_changed_secret_new_ones(
    vault_daemon: Daemon, cluster: Cluster, kind: str
) -> None:
    name = f"whole-{uuid.uuid4().hex[:8]}"
    base = f"kv1/{name}" if kind == "kv1" else f"secret/data/{name}"
    write(cluster, base, {"password": "first-value-3f9a"})
    secret_path = f"{base}?version=1" if kind == "kv2-pinned" else base
    raw = [cluster.bao.api("GET", base) for _ in range(2)]
    assert raw[0]["request_id"] != raw[1]["request_id"], "the envelope field the file must not carry"
    assert {k: v for k, v in raw[0].items() if k != "request_id"} == {k: v for k, v in raw[1].items()
                                                                       if k != "request_id"}
    pod = new_pod()
    first, second, other_pod = (poll(vault_daemon, cluster, secret_path, p) for p in (pod, pod, new_pod()))
    assert first == second == other_pod
    document = json.loads(first[0])
    assert document["request_id"] == "" and document["lease_duration"] == raw[0]["lease_duration"]

    write(cluster, base, {"password": "second-value-3f9a"})
    changed = poll(vault_daemon, cluster, secret_path, pod)
    if kind == "kv2-pinned":  # version 1 itself did not change
        assert changed == first
        return
    assert changed[0] != first[0] and changed[1] != first[1]
    assert b"second-value-3f9a" in changed[0]
    assert poll(vault_daemon, cluster, secret_path, pod) == changed
