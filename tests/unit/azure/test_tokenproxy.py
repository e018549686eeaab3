"""Identity binding's token proxy: the SNI name from the cluster id, the cluster id from the API server's
certificate names, computed once and only when not given, and errors that say to set --sni-name."""

from __future__ import annotations

import base64
import hashlib
import re
import ssl
import time

import pytest

from provider.backends.azure.tokenproxy import (
    API_SERVER_HOST,
    ProxyRoute,
    TokenProxy,
    TokenProxySettings,
    check_proxy_url,
    check_sni_name,
    cluster_id_from_names,
    sni_name_for_cluster,
    tls_refused,
)
from provider.errors import ErrorKind, ProviderError

CLUSTER_ID = "65f1d5a2b3c4d5e6f7a8b9c0"
AKS_NAMES = ["kubernetes", "kubernetes.default", "kubernetes.default.svc", API_SERVER_HOST,
             f"hcp-kubernetes.{CLUSTER_ID}.svc.cluster.local"]


def test_sni_name_is_base32hex_of_the_sha256_of_the_cluster_id() -> None:
    name = sni_name_for_cluster(CLUSTER_ID)
    assert re.fullmatch(r"a[0-9a-v]{52}\.ests\.aks", name)
    # The same digits by hand: base32hex is base32 with the alphabet 0-9A-V.
    digest = hashlib.sha256(b"identity-binding" + CLUSTER_ID.encode()).digest()
    standard = base64.b32encode(digest).decode().rstrip("=")
    hexed = standard.translate(str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", "0123456789ABCDEFGHIJKLMNOPQRSTUV"))
    assert name == f"a{hexed.lower()}.ests.aks"
    assert sni_name_for_cluster("other") != name


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (AKS_NAMES, CLUSTER_ID),
        (["hcp-kubernetes.abc-123.svc.cluster.local"], "abc-123"),
        (["kubernetes.default.svc.cluster.local"], None),  # not an AKS API server
        (["hcp-kubernetes..svc.cluster.local"], None),
        (["hcp-kubernetes.a.b.svc.cluster.local"], None),
        (["xhcp-kubernetes.abc.svc.cluster.local"], None),
        ([], None),
    ],
)
def test_cluster_id_from_the_api_server_names(names: list[str], expected: str | None) -> None:
    assert cluster_id_from_names(names) == expected


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://kubernetes.default.svc.cluster.local", None),
        ("https://10.0.0.1:443/proxy", None),
        ("http://kubernetes.default.svc.cluster.local", "must be an https:// URL"),
        ("https://", "must be an https:// URL"),
        ("https://user:pw@host", "must not carry user information"),
        ("https://host/?a=b", "must not carry user information, a query or a fragment"),
    ],
)
def test_proxy_url_rules(url: str, problem: str | None) -> None:
    found = check_proxy_url(url)
    assert (found is None) if problem is None else (found is not None and problem in found)


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", None),  # unset: computed from the API server's certificate
        ("  ", None),
        ("a1b2c3d4.ests.aks", None),
        ("Proxy-1.example_internal.local", None),
        ("a" * 63 + ".aks", None),
        ("a/b", "is not a DNS name"),
        ("https://proxy.aks", "is not a DNS name"),
        ("a..b", "is not a DNS name"),
        ("proxy.aks.", "is not a DNS name"),
        ("-proxy.aks", "is not a DNS name"),
        ("a" * 64 + ".aks", "is not a DNS name"),
        (".".join(["abc"] * 64), "is not a DNS name"),  # 255 characters
        ("pröxy.aks", "is not a DNS name"),
        ("10.0.0.1", "is an IP address, which TLS does not send as SNI"),
        ("::1", "is an IP address"),
    ],
)
def test_sni_name_rules(name: str, problem: str | None) -> None:
    found = check_sni_name(name)
    assert (found is None) if problem is None else (found is not None and problem in found and "unset" in found)


class Names:
    """Stands in for the TLS handshake with the API server: answers or raises, and counts calls."""

    def __init__(self, *answers: list[str] | BaseException) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, int, str]] = []

    def __call__(self, host: str, port: int, ca_file: str, timeout: float) -> list[str]:
        self.calls.append((host, port, ca_file))
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, BaseException):
            raise answer
        return answer


def test_the_sni_name_is_computed_once_at_the_first_route() -> None:
    names = Names(AKS_NAMES)
    proxy = TokenProxy(TokenProxySettings(ca_file="/ca.crt", api_server_port=6443), names)
    assert names.calls == []  # nothing at start
    for _ in range(3):
        route = proxy.route(time.monotonic() + 30)
    assert route == ProxyRoute("https://kubernetes.default.svc.cluster.local", sni_name_for_cluster(CLUSTER_ID),
                               "/ca.crt")
    assert names.calls == [(API_SERVER_HOST, 6443, "/ca.crt")]


def test_a_given_sni_name_is_never_computed() -> None:
    names = Names(OSError("must not be called"))
    proxy = TokenProxy(TokenProxySettings(url="https://proxy.example:8443", sni_name="given.ests.aks"), names)
    assert proxy.route(time.monotonic() + 30).sni_name == "given.ests.aks"
    assert names.calls == []


@pytest.mark.parametrize(
    ("failure", "kind", "message"),
    [
        (["kubernetes.default.svc.cluster.local"], ErrorKind.UNAUTHENTICATED,
         "has no DNS name hcp-kubernetes.<cluster id>.svc.cluster.local"),
        (FileNotFoundError(2, "No such file"), ErrorKind.UNAUTHENTICATED, "the cluster CA file /ca.crt does not exist"),
        (ssl.SSLCertVerificationError(1, "certificate verify failed: unable to get local issuer certificate"),
         ErrorKind.UNAUTHENTICATED, "TLS failed"),
        (ConnectionRefusedError(111, "Connection refused"), ErrorKind.UNAVAILABLE,
         "cannot reach the API server's certificate (kubernetes.default.svc.cluster.local:443, trusted with /ca.crt) "
         "(Connection refused)"),
        (TimeoutError("timed out"), ErrorKind.UNAVAILABLE, "(timed out)"),
    ],
)
def test_an_uncomputable_sni_name_says_to_set_the_flag_and_is_tried_again(
    failure: list[str] | BaseException, kind: ErrorKind, message: str
) -> None:
    names = Names(failure, AKS_NAMES)
    proxy = TokenProxy(TokenProxySettings(ca_file="/ca.crt"), names)
    with pytest.raises(ProviderError) as caught:
        proxy.route(time.monotonic() + 30)
    assert caught.value.kind is kind
    assert message in caught.value.message
    assert "--sni-name" in caught.value.message
    # Not kept: the next identity-binding mount computes it again, and succeeds once the cluster answers.
    assert proxy.route(time.monotonic() + 30).sni_name == sni_name_for_cluster(CLUSTER_ID)
    assert len(names.calls) == 2


def test_tls_refused_looks_through_the_exception_chain() -> None:
    try:
        try:
            raise ssl.SSLCertVerificationError(1, "hostname mismatch")
        except ssl.SSLError as inner:
            raise RuntimeError("wrapped") from inner
    except RuntimeError as outer:
        assert tls_refused(outer)
    assert not tls_refused(ConnectionRefusedError(111, "refused"))
