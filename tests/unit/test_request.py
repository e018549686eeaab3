"""request.py: every form the driver sends, and every malformed one (→ INVALID_ARGUMENT naming the field)."""

from __future__ import annotations

import json

import pytest

from provider.errors import ErrorKind, ProviderError
from provider.request import SERVICE_ACCOUNT_TOKENS, parse_mount_request

POD_KEYS = {
    "csi.storage.k8s.io/pod.name": "web-0",
    "csi.storage.k8s.io/pod.namespace": "shop",
    "csi.storage.k8s.io/pod.uid": "d448c6a2-cda8-42e3-84fb-3cf75faa8399",
    "csi.storage.k8s.io/serviceAccount.name": "web",
    "csi.storage.k8s.io/ephemeral": "true",
    "secretProviderClass": "web-secrets",
}
TOKENS = json.dumps({"vault": {"token": "tok-vault", "expirationTimestamp": "2026-05-01T11:00:00Z"},
                     "": {"token": "tok-default", "expirationTimestamp": "2026-05-01T11:00:00Z"}})


def attrs(**extra: str) -> str:
    return json.dumps({**POD_KEYS, "roleName": "app", **extra}, sort_keys=True, separators=(",", ":"))


def test_full_request_is_typed() -> None:
    ctx = parse_mount_request(attrs(**{SERVICE_ACCOUNT_TOKENS: TOKENS}), "null", "420", "/var/lib/kubelet/x")
    assert (ctx.pod.name, ctx.pod.namespace, ctx.pod.service_account) == ("web-0", "shop", "web")
    assert ctx.pod.uid == "d448c6a2-cda8-42e3-84fb-3cf75faa8399"
    assert ctx.spc_name == "web-secrets"
    assert dict(ctx.parameters) == {"roleName": "app", "secretProviderClass": "web-secrets"}
    assert ctx.default_mode == 0o644
    assert ctx.token_for("vault").token == "tok-vault"  # type: ignore[union-attr]
    assert ctx.token_for("").token == "tok-default"  # type: ignore[union-attr]
    assert ctx.token_for("other") is None
    assert dict(ctx.secrets) == {}
    assert "tok-vault" not in repr(ctx)


@pytest.mark.parametrize(
    ("secrets", "expected"),
    [
        ("null", {}),
        ("{}", {}),
        ("", {}),
        ('{"clientid":"id","clientsecret":"raw value, not base64=="}',
         {"clientid": "id", "clientsecret": "raw value, not base64=="}),
    ],
)
def test_secrets_forms(secrets: str, expected: dict[str, str]) -> None:
    assert dict(parse_mount_request(attrs(), secrets, "420", "/t").secrets) == expected


def test_tokens_only_in_secrets_kubernetes_1_35_mode() -> None:
    secrets = json.dumps({SERVICE_ACCOUNT_TOKENS: TOKENS, "clientid": "x"})
    ctx = parse_mount_request(attrs(), secrets, "420", "/t")
    assert ctx.token_for("vault").token == "tok-vault"  # type: ignore[union-attr]
    assert dict(ctx.secrets) == {"clientid": "x"}


@pytest.mark.parametrize(
    ("permission", "mode"), [("420", 0o644), ("256", 0o400), ("0", 0), ("511", 0o777), ("", 0o644)]
)
def test_permission_is_decimal(permission: str, mode: int) -> None:
    assert parse_mount_request(attrs(), "null", permission, "/t").default_mode == mode


@pytest.mark.parametrize(
    ("attributes", "secrets", "permission", "field"),
    [
        ("", "null", "420", "attributes"),
        ("{", "null", "420", "attributes"),
        ("[]", "null", "420", "attributes"),
        ("null", "null", "420", "attributes"),
        ('{"roleName": 5}', "null", "420", "attributes['roleName']"),
        ('{"a": null}', "null", "420", "attributes['a']"),
        ('{"a": {"b": "c"}}', "null", "420", "attributes['a']"),
        (attrs(), "{", "420", "secrets"),
        (attrs(), '"x"', "420", "secrets"),
        (attrs(), '{"k": 1}', "420", "secrets['k']"),
        (attrs(), "null", "0644", "permission"),
        (attrs(), "null", "\"420\"", "permission"),
        (attrs(), "null", "420.5", "permission"),
        (attrs(), "null", "true", "permission"),
        (attrs(), "null", "-1", "permission"),
        (attrs(), "null", "512", "permission"),
        (attrs(), "null", "2147483647", "permission"),
        ("[" * 100_000, "null", "420", "attributes"),  # deeper than the JSON parser recurses
        (attrs(), "[" * 100_000, "420", "secrets"),
        (attrs(), "null", "[" * 100_000, "permission"),
        (attrs(**{SERVICE_ACCOUNT_TOKENS: "[" * 100_000}), "null", "420", SERVICE_ACCOUNT_TOKENS),
        (attrs(**{SERVICE_ACCOUNT_TOKENS: "not json"}), "null", "420", SERVICE_ACCOUNT_TOKENS),
        (attrs(**{SERVICE_ACCOUNT_TOKENS: "[1]"}), "null", "420", SERVICE_ACCOUNT_TOKENS),
        (attrs(**{SERVICE_ACCOUNT_TOKENS: '{"vault": "tok"}'}), "null", "420", SERVICE_ACCOUNT_TOKENS),
        (attrs(**{SERVICE_ACCOUNT_TOKENS: '{"vault": {"token": 5}}'}), "null", "420", SERVICE_ACCOUNT_TOKENS),
    ],
)
def test_malformed_requests_name_the_field(attributes: str, secrets: str, permission: str, field: str) -> None:
    with pytest.raises(ProviderError) as caught:
        parse_mount_request(attributes, secrets, permission, "/t")
    assert caught.value.kind is ErrorKind.INVALID_ARGUMENT
    assert field in caught.value.message


def test_token_value_never_in_error() -> None:
    planted = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJwbGFudGVkIn0.c2lnbmF0dXJl"
    bad = json.dumps({"vault": {"token": planted}}) + "garbage"
    with pytest.raises(ProviderError) as caught:
        parse_mount_request(attrs(**{SERVICE_ACCOUNT_TOKENS: bad}), "null", "420", "/t")
    assert planted not in caught.value.message
