"""plainurl.py: only plain URLs pass, rebuilt from their parts; dot segments are found however written."""

from __future__ import annotations

import pytest

from provider.plainurl import has_dot_segment, parse_plain_url, shown_url


@pytest.mark.parametrize(
    ("text", "rebuilt"),
    [
        ("http://127.0.0.1:8200", "http://127.0.0.1:8200"),
        ("https://vault.corp.example", "https://vault.corp.example"),
        ("HTTPS://Vault.Corp.Example:8200/", "https://vault.corp.example:8200"),
        ("https://gw.example/team-a/", "https://gw.example/team-a"),
        ("https://gw.example//team-a//x", "https://gw.example/team-a/x"),
        ("http://[::1]:8200", "http://[::1]:8200"),
        ("https://gw.example/a%20b", "https://gw.example/a%20b"),
        ("https://gw.example/v1.2/app.conf", "https://gw.example/v1.2/app.conf"),
        ("https://a", "https://a"),
    ],
)
def test_plain_urls_are_rebuilt_from_their_parts(text: str, rebuilt: str) -> None:
    assert parse_plain_url(text).text == rebuilt


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("http://127.0.0.2:8201\\@127.0.0.1:8200", "backslash"),  # urlsplit: host .1; urllib3: host .2
        ("http://127.0.0.1:8200\\", "backslash"),
        ("http://user@127.0.0.1:8200", "user information"),
        ("http://user:pass@127.0.0.1:8200", "user information"),
        ("http://127.0.0.2:1@127.0.0.1:8200", "user information"),
        ("http://127.0.0.1:8200/a b", "whitespace"),
        ("http://127.0.0.1:8200\t", "whitespace"),
        ("http://127.0.0.1:8200/\x00", "control character"),
        ("http://127.0.0.1:8200/\x7f", "control character"),
        ("http://127.0.0.1:8200/x\n", "whitespace"),
        ("http://127.0.0.1:8200?x=1", "query"),
        ("http://127.0.0.1:8200/#x", "fragment"),
        ("http://127.0.0.1:8200/%zz", "%XX escape"),
        ("http://127.0.0.1:99999", "port 99999"),
        ("http://127.0.0.1:0", "port 0"),
        ("http://127.0.0.1:port", "not of the form"),
        ("ftp://vault.example", "scheme 'ftp'"),
        ("vault:8200", "not of the form"),
        ("http://", "not of the form"),
        ("http://-vault.example", "not of the form"),
        ("http://gw/team-a/../team-b", "'..' segment"),
        ("http://gw/team-a/./x", "'..' segment"),
        ("http://gw/team-a/%2e%2e/team-b", "'..' segment"),
        ("http://gw/team-a/%2E%2e/team-b", "'..' segment"),
        ("http://gw/team-a/.%2E", "'..' segment"),
        ("http://gw/team-a/%252e%252e/team-b", "'..' segment"),
        ("http://gw/team-a/..", "'..' segment"),
        ("http://vault.example\u0130", "not of the form"),
    ],
)
def test_anything_not_plain_is_refused_saying_why(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason.replace("?", r"\?").replace("(", r"\(")):
        parse_plain_url(text)


def test_a_query_is_taken_only_where_allowed() -> None:
    assert parse_plain_url("https://gw/v1/secret/data/x?version=2", allow_query=True).text == \
        "https://gw/v1/secret/data/x?version=2"
    with pytest.raises(ValueError, match="query"):
        parse_plain_url("https://gw/v1/secret/data/x?version=2")


@pytest.mark.parametrize(
    ("path", "dotted"),
    [
        ("secret/data/app", False),
        ("secret/data/app.conf", False),
        ("secret/data/..app", False),
        ("secret/data/.../x", False),
        ("../secret", True),
        ("secret/../sys/x", True),
        ("secret/./data", True),
        ("secret/data/..", True),
        (".", True),
        ("secret/%2e%2e/x", True),
        ("secret/%2E%2E/x", True),
        ("secret/%2e./x", True),
        ("secret/.%2E/x", True),
        ("secret/%2e/x", True),
        ("secret/%2e%2e%2fsys", True),  # an encoded slash makes a segment once decoded
        ("secret/%252e%252e/x", True),  # decoded twice by a gateway and then the server
        ("secret\\..\\sys", True),  # a backslash is a separator to some servers
        ("secret/%2e%2ex/y", False),
    ],
)
def test_dot_segments(path: str, dotted: bool) -> None:
    assert has_dot_segment(path) is dotted


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("http://user:s3cret@vault.example/x", "http://…@vault.example/x"),
        ("http://a:b@c@vault.example", "http://…@vault.example"),
        ("http://127.0.0.2:1\\@127.0.0.1:2", "http://…@127.0.0.1:2"),
        ("https://vault.example/v1/x?token=s3cret", "https://vault.example/v1/x"),
        ("https://vault.example/\x00", "https://vault.example/?"),
    ],
)
def test_shown_urls_hold_no_credentials(text: str, shown: str) -> None:
    assert shown_url(text) == shown


def test_shown_urls_are_short() -> None:
    shown = shown_url("https://vault.example/" + "a" * 5000)
    assert len(shown) < 260 and "more characters" in shown
