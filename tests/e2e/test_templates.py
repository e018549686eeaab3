"""Templated files through the socket against a real OpenBao: several secrets rendered into one file."""

from __future__ import annotations

import grpc
import pytest
import yaml

from tests.e2e.test_vault_mount import contents, failure, mount, new_pod
from tests.support.daemon import Daemon
from tests.support.openbao import KV1, KV2, Cluster, vault_spc

OBJECTS = yaml.safe_dump([
    {"objectName": "db-username", "secretPath": "kv1/app", "secretKey": "username"},
    {"objectName": "db-password", "secretPath": "kv1/app", "secretKey": "password"},
    {"objectName": "greeting", "secretPath": "secret/data/kv1", "secretKey": "bar1"},
])


def spc_with(*templates: dict[str, object]) -> dict[str, object]:
    return vault_spc(OBJECTS, roleName="kv-role", templates=yaml.safe_dump(list(templates)))


def test_pgpass_and_env_from_one_mount(vault_daemon: Daemon, cluster: Cluster) -> None:
    spc = spc_with(
        {"fileName": ".pgpass", "filePermission": "0600", "keepSources": False,
         "template": "db.internal:5432:app:{{ db-username }}:{{ db-password }}\n"},
        {"fileName": "app.env", "template": "GREETING={{ greeting | shell }}\nUSER={{ db-username | json }}\n"},
    )
    response = mount(vault_daemon, cluster, spc, new_pod())
    files = contents(response)
    user, password = KV1["app"]["username"], KV1["app"]["password"]
    assert files[".pgpass"] == f"db.internal:5432:app:{user}:{password}\n".encode()
    assert files["app.env"] == f"GREETING='{KV2['kv1']['bar1']}'\nUSER=\"{user}\"\n".encode()
    assert "db-username" not in files and "db-password" not in files, "keepSources: false drops the sources"
    assert files["greeting"] == KV2["kv1"]["bar1"].encode()
    modes = {f.path: f.mode for f in response.files}
    assert modes[".pgpass"] == 0o600 and modes["app.env"] == 0o644
    ids = [v.id for v in response.object_version]
    assert "template/.pgpass" in ids and "template/app.env" in ids and "greeting" in ids


def test_same_secrets_same_template_version(vault_daemon: Daemon, cluster: Cluster) -> None:
    spc = spc_with({"fileName": "creds", "template": "{{ db-username }}:{{ db-password }}"})
    pod = new_pod()
    first = {v.id: v.version for v in mount(vault_daemon, cluster, spc, pod).object_version}
    second = {v.id: v.version for v in mount(vault_daemon, cluster, spc, pod).object_version}
    assert first == second


def test_spc_without_templates_is_unchanged(vault_daemon: Daemon, cluster: Cluster) -> None:
    plain = mount(vault_daemon, cluster, vault_spc(OBJECTS, roleName="kv-role"), new_pod())
    assert sorted(contents(plain)) == ["db-password", "db-username", "greeting"]


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ not-an-object }}", "refers to 'not-an-object', which no object produced"),
        ("{{ db-username | exec }}", "unknown filter 'exec'"),
        ("{{ db-username ", "is not closed"),
    ],
)
def test_template_errors_fail_the_whole_mount(
    vault_daemon: Daemon, cluster: Cluster, template: str, message: str
) -> None:
    error = failure(vault_daemon, cluster, spc_with({"fileName": "out", "template": template}), new_pod())
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert message in error.details()
    assert KV1["app"]["password"] not in error.details()
