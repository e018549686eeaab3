"""SPC parameters + daemon defaults → VaultPlan (official config_test and client_test precedence cases)."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path

import pytest

from provider.backends.vault.backend import VaultBackend
from provider.backends.vault.config import (
    DEFAULT_ADDRESS,
    Connection,
    Defaults,
    TLSSettings,
    defaults_from,
    parse_plan,
)
from provider.backends.vault.policy import VaultPolicy
from provider.contract import plan_mount
from provider.errors import ErrorKind, ProviderError
from provider.policy import FilesPolicy
from provider.request import MountContext, parse_mount_request

POD = {
    "csi.storage.k8s.io/pod.name": "nginx-secrets-store-inline",
    "csi.storage.k8s.io/pod.uid": "9aeb260f-d64a-426c-9872-95b6bab37e00",
    "csi.storage.k8s.io/pod.namespace": "test",
    "csi.storage.k8s.io/serviceAccount.name": "default",
}
OBJECTS = "- secretPath: v1/secret/foo1\n  objectName: bar1\n  filePermission: 0600"


def context(params: Mapping[str, str], tokens: Mapping[str, str] | None = None, pod: bool = True) -> MountContext:
    attributes = dict(params) | (POD if pod else {}) | {"secretProviderClass": "spc"}
    if tokens:
        attributes["csi.storage.k8s.io/serviceAccount.tokens"] = json.dumps(
            {aud: {"token": tok, "expirationTimestamp": "2030-01-01T00:00:00Z"} for aud, tok in tokens.items()})
    return parse_mount_request(json.dumps(attributes), "null", "420", "/some/path")


def test_parse_parameters_from_a_driver_payload() -> None:
    # TestParseParameters: what the driver sends, with pod info and an audience.
    ctx = context({"roleName": "example-role", "vaultAddress": "http://vault:8200", "vaultSkipTLSVerify": "true",
                   "audience": "testaudience", "objects": "- objectName: bar1\n  secretPath: v1/secret/foo1\n  "
                   "method: GET\n- objectName: bar2\n  secretPath: v1/secret/foo2\n"})
    plan = parse_plan(ctx, Defaults())
    assert (plan.role, plan.connection.address, plan.connection.tls.skip_verify) == ("example-role",
                                                                                      "http://vault:8200", True)
    assert [(o.name, o.request.path, o.request.method) for o in plan.objects] == [
        ("bar1", "/v1/secret/foo1", "GET"), ("bar2", "/v1/secret/foo2", "GET")]
    assert (plan.pod.name, plan.pod.uid, plan.pod.namespace, plan.pod.service_account) == tuple(POD.values())
    assert plan.audience == "testaudience"
    assert plan.driver_token is None


def test_parse_config_defaults() -> None:
    plan = parse_plan(context({"roleName": "example-role", "vaultSkipTLSVerify": "true", "objects": OBJECTS}),
                      Defaults())
    assert plan.connection == Connection(DEFAULT_ADDRESS, "", TLSSettings(skip_verify=True))
    assert plan.auth_mount == "kubernetes"
    assert [(o.name, o.request.path, o.mode) for o in plan.objects] == [("bar1", "/v1/secret/foo1", 0o600)]


def test_parse_config_set_all_options(tmp_path: Path) -> None:
    params = {
        "roleName": "example-role", "vaultSkipTLSVerify": "true", "objects": OBJECTS,
        "vaultCACertPath": "my-ca-cert-path", "vaultCADirectory": "my-ca-directory",
        "vaultTLSServerName": "mysni", "vaultTLSClientCertPath": "my-client-cert-path",
        "vaultTLSClientKeyPath": "my-client-key-path", "vaultKubernetesMountPath": "my-mount-path",
        "vaultNamespace": "my-namespace", "audience": "my-aud",
    }
    defaults = Defaults(policy=VaultPolicy(files=FilesPolicy(allowed_files_dir=str(tmp_path))))
    plan = parse_plan(context(params, {"my-aud": "my-pod-sa-token", "other-aud": "unused-token"}), defaults)
    assert plan.auth_mount == "my-mount-path"
    base = os.path.realpath(tmp_path)
    assert plan.connection == Connection(DEFAULT_ADDRESS, "my-namespace", TLSSettings(
        ca_cert=f"{base}/my-ca-cert-path", ca_directory=f"{base}/my-ca-directory", server_name="mysni",
        skip_verify=True, client_cert=f"{base}/my-client-cert-path", client_key=f"{base}/my-client-key-path",
        ca_root=base, client_root=base))
    assert plan.driver_token is not None and plan.driver_token.token == "my-pod-sa-token"
    assert "my-pod-sa-token" not in repr(plan)


@pytest.mark.parametrize(
    ("audience", "tokens", "expected"),
    [("", {"vault": "t-vault", "": "t-default"}, "t-vault"), ("aud1", {"vault": "t-vault", "aud1": "t-1"}, "t-1"),
     ("", {"": "t-default"}, None), ("aud2", {"vault": "t-vault"}, None)],
)
def test_driver_token_is_picked_by_audience(audience: str, tokens: dict[str, str], expected: str | None) -> None:
    params = {"roleName": "r", "objects": OBJECTS} | ({"audience": audience} if audience else {})
    plan = parse_plan(context(params, tokens), Defaults())
    assert (plan.driver_token.token if plan.driver_token else None) == expected


@pytest.mark.parametrize(
    ("params", "message"),
    [  # TestParseConfig_Errors and TestValidateConfig, plus our own checks
        ({"objects": OBJECTS}, "missing 'roleName'"),
        ({"roleName": "r", "objects": ""}, "no secrets configured"),
        ({"roleName": "r"}, "no secrets configured"),
        ({"roleName": "r", "objects": OBJECTS, "vaultAuthMountPath": "a", "vaultKubernetesMountPath": ""},
         "cannot set both vaultKubernetesMountPath and vaultAuthMountPath"),
        ({"roleName": "r", "objects": "- {objectName: foo, secretPath: a}\n- {objectName: foo, secretPath: b}"},
         "the following keys were duplicated: foo"),
        ({"roleName": "r", "objects": OBJECTS, "vaultSkipTLSVerify": "maybe"}, "is not a boolean"),
        ({"roleName": "r", "objects": OBJECTS, "vaultTLSClientCertPath": "c"}, "both vaultTLSClientCertPath and"),
        ({"roleName": "r", "objects": OBJECTS, "vaultAddress": "vault:8200"}, "is not a Vault URL"),
        ({"roleName": "r", "objects": OBJECTS, "vaultAddress": "ftp://vault"}, "is not a Vault URL"),
        ({"roleName": "r", "objects": OBJECTS, "vaultAuthMountPath": "a b"}, "is not an auth mount path"),
        ({"roleName": "r", "objects": OBJECTS, "vaultAuthMountPath": "../sys"}, "is not an auth mount path"),
        # Issue 13: the address checked is the address dialled; paths stay where they were allowed.
        ({"roleName": "r", "objects": OBJECTS, "vaultAddress": "http://127.0.0.2:8201\\@127.0.0.1:8200"},
         "vaultAddress 'http://…@127.0.0.1:8200' is not a Vault URL"),
        ({"roleName": "r", "objects": OBJECTS, "vaultAddress": "http://user:s3cret@vault:8200"},
         "(it has user information ('user@'); a Vault address names no user)"),
        ({"roleName": "r", "objects": OBJECTS, "vaultAddress": "http://gw/team-a/../team-b"}, "'..' segment"),
        ({"roleName": "r", "objects": OBJECTS, "vaultAddress": "http://gw/team-a/%2E%2e/team-b"}, "'..' segment"),
        ({"roleName": "r", "objects": OBJECTS, "vaultAuthMountPath": "kubernetes/./x"},
         "vaultAuthMountPath 'kubernetes/./x' is not an auth mount path"),
        ({"roleName": "r", "objects": OBJECTS, "vaultKubernetesMountPath": "team-a/../team-b"},
         "vaultKubernetesMountPath 'team-a/../team-b' is not an auth mount path"),
        ({"roleName": "r", "objects": OBJECTS, "vaultKubernetesMountPath": "%2e%2e/sys"},
         "vaultKubernetesMountPath '%2e%2e/sys' is not an auth mount path"),
    ],
)
def test_parse_errors(params: dict[str, str], message: str) -> None:
    with pytest.raises(ProviderError) as caught:
        parse_plan(context(params), Defaults())
    assert caught.value.kind is ErrorKind.INVALID_ARGUMENT
    assert message in caught.value.message


def test_pod_info_is_required() -> None:
    with pytest.raises(ProviderError, match="podInfoOnMount"):
        parse_plan(context({"roleName": "r", "objects": OBJECTS}, pod=False), Defaults())


@pytest.mark.parametrize(
    ("env", "flag", "spc", "expected"),
    [  # TestConfigPrecedence: env < flags < SPC
        ("", "", "", DEFAULT_ADDRESS),
        ("http://from-env:8200", "", "", "http://from-env:8200"),
        ("http://from-env:8200", "http://from-flags:8200", "", "http://from-flags:8200"),
        ("http://from-env:8200", "http://from-flags:8200", "http://from-parameters:8200", "http://from-parameters:8200"),
        ("", "", "unix:///run/agent.sock", "unix:///run/agent.sock"),
        ("", "", "HTTPS://Vault.Example:8200/team-a/", "https://vault.example:8200/team-a"),  # rebuilt from its parts
        ("", "http://from-flags:8200//", "", "http://from-flags:8200"),
    ],
)
def test_address_precedence(env: str, flag: str, spc: str, expected: str) -> None:
    defaults = defaults_from({"VAULT_ADDR": env} if env else {}, {"vaultAddress": flag or None})
    params = {"roleName": "r", "objects": OBJECTS} | ({"vaultAddress": spc} if spc else {})
    assert parse_plan(context(params), defaults).connection.address == expected


@pytest.mark.parametrize(
    ("env", "flag", "spc", "expected"),
    [  # a later layer can switch verification back on (the official provider cannot)
        ("true", None, "", True),
        ("true", None, "false", False),
        ("", True, "", True),
        ("1", None, "0", False),
        ("false", True, "", True),
        ("", None, "", False),
    ],
)
def test_skip_verify_precedence(env: str, flag: bool | None, spc: str, expected: bool) -> None:
    defaults = defaults_from({"VAULT_SKIP_VERIFY": env}, {"vaultSkipTLSVerify": flag})
    params = {"roleName": "r", "objects": OBJECTS} | ({"vaultSkipTLSVerify": spc} if spc else {})
    assert parse_plan(context(params), defaults).connection.tls.skip_verify is expected


@pytest.mark.parametrize(
    ("params", "policy", "message"),
    [  # SPC authors are untrusted: their files and addresses go through the operator's policy
        ({"vaultCACertPath": "/etc/shadow"}, VaultPolicy(), "vaultCACertPath names a file on the provider's disk"),
        ({"vaultCACertPath": "../../etc/shadow"}, VaultPolicy(files=FilesPolicy(allowed_files_dir="/srv/ca")),
         "must name a file under the directory set by --allowed-files-dir"),
        ({"vaultTLSClientCertPath": "c", "vaultTLSClientKeyPath": "k"}, VaultPolicy(), "vaultTLSClientCertPath"),
        ({"vaultAddress": "https://vault.evil.example"}, VaultPolicy(("https://vault.corp.example",)),
         "is not allowed by this provider's --allowed-vault-addresses"),
    ],
)
def test_spc_files_and_addresses_follow_the_policy(params: dict[str, str], policy: VaultPolicy,
                                                   message: str) -> None:
    with pytest.raises(ProviderError) as caught:
        parse_plan(context({"roleName": "r", "objects": OBJECTS} | params), Defaults(policy=policy))
    assert caught.value.kind is ErrorKind.PERMISSION_DENIED
    assert message in caught.value.message


@pytest.mark.parametrize("mount", ["jwt/../sys", "./kubernetes", "%2e%2e", "a b"])
def test_a_daemon_auth_mount_with_dot_segments_stops_the_daemon(mount: str) -> None:
    with pytest.raises(ValueError, match="is not an auth mount path"):
        defaults_from({}, {}, mount)


@pytest.mark.parametrize("address", ["http://127.0.0.2:8201\\@127.0.0.1:8200", "http://u:p@vault:8200",
                                     "http://vault:8200/a/../b", "http://vault:8200?x=1"])
@pytest.mark.parametrize("source", ["environment", "flags"])
def test_a_daemon_address_that_is_not_plain_stops_the_daemon(address: str, source: str) -> None:
    environ, flags = ({"VAULT_ADDR": address}, {}) if source == "environment" else ({}, {"vaultAddress": address})
    with pytest.raises(ValueError, match="is not a Vault URL") as caught:
        defaults_from(environ, flags)
    assert "p@" not in str(caught.value)


@pytest.mark.parametrize(("policy", "refused"), [
    (VaultPolicy(), False),  # no allowlist: the SPC may choose, as with the official provider
    (VaultPolicy(("https://vault.corp.example",)), True),
    (VaultPolicy(("https://vault.corp.example",), allow_skip_tls_verify=True), False),
])
@pytest.mark.parametrize("value", ["true", "1", "True", "false"])
def test_skipping_tls_verification_with_an_allowlist(policy: VaultPolicy, refused: bool, value: str) -> None:
    params = {"roleName": "r", "objects": OBJECTS, "vaultAddress": "https://vault.corp.example",
              "vaultSkipTLSVerify": value}
    if refused and value != "false":
        with pytest.raises(ProviderError) as caught:
            parse_plan(context(params), Defaults(policy=policy))
        assert caught.value.kind is ErrorKind.INVALID_ARGUMENT
        assert "SecretProviderClass test/spc: vaultSkipTLSVerify" in caught.value.message
        assert "--allow-vault-skip-tls-verify" in caught.value.message
    else:
        assert parse_plan(context(params), Defaults(policy=policy)).connection.tls.skip_verify is (value != "false")


def test_the_operators_skip_verify_is_not_limited_by_the_policy() -> None:
    defaults = defaults_from({}, {"vaultSkipTLSVerify": True}, policy=VaultPolicy(("https://vault.corp.example",)))
    assert parse_plan(context({"roleName": "r", "objects": OBJECTS}), defaults).connection.tls.skip_verify


def test_only_files_the_spc_named_are_confined() -> None:
    policy = VaultPolicy(files=FilesPolicy(allowed_files_dir="/srv/allowed"))
    defaults = defaults_from({}, {"vaultCADirectory": "/etc/ssl/certs", "vaultTLSClientCertPath": "/etc/c.pem",
                                  "vaultTLSClientKeyPath": "/etc/k.pem"}, policy=policy)
    tls = parse_plan(context({"roleName": "r", "objects": OBJECTS}), defaults).connection.tls
    assert (tls.ca_root, tls.client_root) == ("", "")
    tls = parse_plan(context({"roleName": "r", "objects": OBJECTS, "vaultCADirectory": "cas"}), defaults).connection.tls
    assert (tls.ca_directory, tls.ca_root, tls.client_root) == ("/srv/allowed/cas", "/srv/allowed", "")


def test_daemon_settings_are_not_limited_by_the_policy() -> None:
    policy = VaultPolicy(("https://vault.corp.example",))
    defaults = defaults_from({}, {"vaultAddress": "http://127.0.0.1:8200", "vaultCACertPath": "/etc/ca.pem"},
                             policy=policy)
    plan = parse_plan(context({"roleName": "r", "objects": OBJECTS}), defaults)
    assert (plan.connection.address, plan.connection.tls.ca_cert) == ("http://127.0.0.1:8200", "/etc/ca.pem")


def test_tls_pairs_come_whole_from_one_layer(tmp_path: Path) -> None:
    defaults = defaults_from(
        {"VAULT_CACERT": "/env/ca.pem", "VAULT_CLIENT_CERT": "/env/c.pem", "VAULT_CLIENT_KEY": "/env/k.pem",
         "VAULT_NAMESPACE": "env-ns", "VAULT_TLS_SERVER_NAME": "env-sni"},
        {"vaultCADirectory": "/flags/cas", "vaultNamespace": "flag-ns"},
    )
    tls = parse_plan(context({"roleName": "r", "objects": OBJECTS}), defaults).connection.tls
    assert (tls.ca_cert, tls.ca_directory) == ("", "/flags/cas")
    assert (tls.client_cert, tls.client_key, tls.server_name) == ("/env/c.pem", "/env/k.pem", "env-sni")
    defaults = dataclasses.replace(defaults, policy=VaultPolicy(files=FilesPolicy(allowed_files_dir=str(tmp_path))))
    plan = parse_plan(context({"roleName": "r", "objects": OBJECTS, "vaultCACertPath": "ca.pem"}), defaults)
    assert (plan.connection.tls.ca_cert, plan.connection.tls.ca_directory) == (
        os.path.join(os.path.realpath(tmp_path), "ca.pem"), "")
    assert plan.connection.namespace == "flag-ns"


@pytest.mark.parametrize(
    ("environ", "flags", "message"),
    [
        ({"VAULT_SKIP_VERIFY": "yes please"}, {}, "environment: vaultSkipTLSVerify"),
        ({}, {"vaultTLSClientKeyPath": "k"}, "flags: both vaultTLSClientCertPath"),
        ({"VAULT_ADDR": "not a url"}, {}, "is not a Vault URL"),
    ],
)
def test_bad_defaults_fail_at_start(environ: dict[str, str], flags: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        defaults_from(environ, flags)


def test_unknown_fields_are_logged_once_per_spc_with_the_nearest_name(caplog: pytest.LogCaptureFixture) -> None:
    backend = VaultBackend(Defaults())
    params = {"roleName": "r", "vaultAdress": "http://x:1", "objects":
              "- {objectName: a, secretPath: p, secretkey: password}\n- {objectName: b, secretPath: p, objectPath: q}"}
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            plan_mount(backend, context(params))
    fields = [getattr(r, "fields", {}) for r in caplog.records]
    assert [(f.get("field") or f.get("parameter"), f.get("suggestion")) for f in fields] == [
        ("vaultAdress", "vaultAddress"), ("secretkey", "secretKey"), ("objectPath", "secretPath")]
    assert "did you mean 'secretKey'?" in caplog.records[1].getMessage()
