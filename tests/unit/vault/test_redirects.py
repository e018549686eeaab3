"""redirects.decide: which redirect from Vault is followed, and why any other is refused."""

from __future__ import annotations

import pytest

from provider.backends.vault.policy import VaultPolicy
from provider.backends.vault.redirects import RedirectRefused, decide
from provider.errors import ErrorKind

ANY = VaultPolicy()
LISTED = VaultPolicy(("https://vault-0.corp.example:8200", "https://vault-1.corp.example:8200",
                      "http://127.0.0.1:8200", "https://gw.corp.example/team-a"))
ACTIVE = "https://vault-0.corp.example:8200/v1/secret/data/app"
STANDBY = "https://vault-1.corp.example:8200/v1/secret/data/app"
DENIED, UNAVAILABLE = ErrorKind.PERMISSION_DENIED, ErrorKind.UNAVAILABLE


@pytest.mark.parametrize(
    ("location", "current", "policy", "status", "followed", "expected"),
    [
        # An HA standby pointing at the active node: followed once, with or without an allowlist.
        (ACTIVE, STANDBY, LISTED, 307, 0, ACTIVE),
        (ACTIVE, STANDBY, ANY, 307, 0, ACTIVE),
        (ACTIVE + "?version=2", STANDBY, LISTED, 307, 0, ACTIVE + "?version=2"),
        ("/v1/secret/data/other", STANDBY, LISTED, 307, 0, "https://vault-1.corp.example:8200/v1/secret/data/other"),
        ("https://VAULT-0.corp.example:8200//v1/x", STANDBY, LISTED, 307, 0, "https://vault-0.corp.example:8200/v1/x"),
        (ACTIVE, STANDBY, LISTED, 301, 0, ACTIVE),
        (ACTIVE, STANDBY, LISTED, 302, 0, ACTIVE),
        (ACTIVE, STANDBY, LISTED, 308, 0, ACTIVE),
        ("http://127.0.0.1:8200/v1/x", "http://127.0.0.1:8200/v1/y", LISTED, 307, 0, "http://127.0.0.1:8200/v1/x"),
        ("https://gw.corp.example/team-a/v1/x", "https://gw.corp.example/team-a/v1/y", LISTED, 307, 0,
         "https://gw.corp.example/team-a/v1/x"),
        ("https://anywhere.example/v1/x", STANDBY, ANY, 307, 0, "https://anywhere.example/v1/x"),
        ("http://anywhere.example/v1/x", "http://vault.example/v1/x", ANY, 307, 0, "http://anywhere.example/v1/x"),
        # Refused, each with its reason.
        (ACTIVE, STANDBY, LISTED, 307, 1, (UNAVAILABLE, "at most 1 redirect")),
        (ACTIVE, STANDBY, ANY, 307, 1, (UNAVAILABLE, "at most 1 redirect")),
        (ACTIVE, STANDBY, LISTED, 303, 0, (UNAVAILABLE, "HTTP 303 asks for a different request")),
        ("https://evil.example/v1/x", STANDBY, LISTED, 307, 0, (DENIED, "--allowed-vault-addresses")),
        ("https://vault-0.corp.example:8201/v1/x", STANDBY, LISTED, 307, 0, (DENIED, "--allowed-vault-addresses")),
        ("https://gw.corp.example/team-b/v1/x", "https://gw.corp.example/team-a/v1/x", LISTED, 307, 0,
         (DENIED, "--allowed-vault-addresses")),
        ("/team-b/v1/x", "https://gw.corp.example/team-a/v1/x", LISTED, 307, 0, (DENIED, "--allowed-vault-addresses")),
        ("../../team-b/v1/x", "https://gw.corp.example/team-a/v1/x", LISTED, 307, 0,
         (DENIED, "--allowed-vault-addresses")),
        ("https://gw.corp.example/team-a/%2e%2e/team-b/v1/x", "https://gw.corp.example/team-a/v1/x", LISTED, 307, 0,
         (DENIED, "'..' segment")),
        ("http://vault-0.corp.example:8200/v1/x", STANDBY, LISTED, 307, 0, (DENIED, "from https to plain http")),
        ("http://anywhere.example/v1/x", STANDBY, ANY, 307, 0, (DENIED, "from https to plain http")),
        ("//evil.example/v1/x", "http://127.0.0.1:8200/v1/y", LISTED, 307, 0, (DENIED, "--allowed-vault-addresses")),
        ("http://127.0.0.2:8201\\@127.0.0.1:8200/v1/x", "http://127.0.0.1:8200/v1/y", LISTED, 307, 0,
         (DENIED, "backslash")),
        ("http://user:pw@127.0.0.1:8200/v1/x", "http://127.0.0.1:8200/v1/y", LISTED, 307, 0,
         (DENIED, "user information")),
        ("ftp://127.0.0.1:8200/v1/x", "http://127.0.0.1:8200/v1/y", ANY, 307, 0, (DENIED, "scheme 'ftp'")),
        ("http://127.0.0.1:8200/v1/x#f", "http://127.0.0.1:8200/v1/y", ANY, 307, 0, (DENIED, "fragment")),
        ("http://127.0.0.1:8200/v1/x", "unix:///run/agent.sock", ANY, 307, 0, (DENIED, "unix:// address")),
    ],
)
def test_decide(location: str, current: str, policy: VaultPolicy, status: int, followed: int,
                expected: str | tuple[ErrorKind, str]) -> None:
    if isinstance(expected, str):
        assert decide(location, current, policy, status=status, followed=followed) == expected
        return
    with pytest.raises(RedirectRefused) as caught:
        decide(location, current, policy, status=status, followed=followed)
    kind, reason = expected
    assert caught.value.kind is kind
    assert caught.value.message.startswith("Vault redirected the request to '")
    assert reason in caught.value.message


def test_a_refusal_names_the_target_without_its_credentials() -> None:
    with pytest.raises(RedirectRefused) as caught:
        decide("https://user:s3cret@evil.example/v1/x?token=hvs.s3cret", STANDBY, LISTED)
    assert "'https://…@evil.example/v1/x'" in caught.value.message
    assert "s3cret" not in caught.value.message
