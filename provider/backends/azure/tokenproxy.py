"""AKS identity binding: where the token proxy is, and the SNI name it answers to.

With identity binding the pod's token request does not go to Entra ID: it goes, as the same HTTP request,
to a proxy that AKS runs at the API server's address and routes to by the TLS SNI name. That name is
derived from the cluster's id, which the API server's own certificate carries as the DNS name
`hcp-kubernetes.<id>.svc.cluster.local`. Standard library only: no Azure SDK is loaded here.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from provider.errors import ErrorKind, ProviderError, exception_chain
from provider.kube import IN_CLUSTER_CA_FILE

DEFAULT_PROXY_URL = "https://kubernetes.default.svc.cluster.local"
API_SERVER_HOST = "kubernetes.default.svc.cluster.local"
DISCOVERY_TIMEOUT_SECONDS = 5.0
_CLUSTER_NAME = re.compile(r"^hcp-kubernetes\.([A-Za-z0-9-]+)\.svc\.cluster\.local$")
_DNS_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
_SET_SNI = "set the daemon flag --sni-name to the token proxy's SNI name"


@dataclass(frozen=True)
class TokenProxySettings:
    """The daemon's flags for the proxy; `sni_name` "" means: compute it from the API server's certificate."""

    url: str = DEFAULT_PROXY_URL
    sni_name: str = ""
    ca_file: str = IN_CLUSTER_CA_FILE
    api_server_port: int = 443  # KUBERNETES_SERVICE_PORT, read at start


@dataclass(frozen=True)
class ProxyRoute:
    """What an identity-binding credential needs: where to send its token requests and how to check TLS."""

    url: str
    sni_name: str
    ca_file: str


def check_proxy_url(url: str) -> str | None:
    """Why the URL cannot be the token proxy's (azure-identity's rules), or None."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        return f"{url!r} must be an https:// URL"
    if parts.username or parts.password or parts.query or parts.fragment:
        return f"{url!r} must not carry user information, a query or a fragment"
    return None


def check_sni_name(name: str) -> str | None:
    """Why the name cannot be sent as the TLS SNI name (a DNS name, RFC 6066: no IP address), or None.
    "" is fine: it means compute the name from the API server's certificate."""
    name = name.strip()
    if not name:
        return None
    fix = "give the proxy's DNS name, such as a1b2c3.ests.aks, or leave it unset to compute it"
    try:
        ipaddress.ip_address(name)
    except ValueError:
        pass
    else:
        return f"{name!r} is an IP address, which TLS does not send as SNI; {fix}"
    if len(name) > 253 or not all(_DNS_LABEL.fullmatch(label) for label in name.split(".")):
        return f"{name!r} is not a DNS name (dot-separated labels of up to 63 letters, digits, '-' or '_'); {fix}"
    return None


def sni_name_for_cluster(cluster_id: str) -> str:
    """The proxy's SNI name for a cluster id, as AKS derives it."""
    digest = hashlib.sha256(("identity-binding" + cluster_id).encode()).digest()
    return ("a" + base64.b32hexencode(digest).decode().rstrip("=") + ".ests.aks").lower()


def cluster_id_from_names(dns_names: list[str]) -> str | None:
    """The cluster id from the API server certificate's DNS names, or None when none has its form."""
    for name in dns_names:
        found = _CLUSTER_NAME.match(name)
        if found:
            return found.group(1)
    return None


def api_server_dns_names(host: str, port: int, ca_file: str, timeout: float) -> list[str]:
    """The DNS names of the API server's certificate, read in a verified TLS handshake (no request sent)."""
    context = ssl.create_default_context(cafile=ca_file)
    with socket.create_connection((host, port), timeout=timeout) as raw, \
            context.wrap_socket(raw, server_hostname=host) as tls:
        certificate: dict[str, Any] = dict(tls.getpeercert() or {})
    return [str(entry[1]) for entry in certificate.get("subjectAltName", ()) if entry[0] == "DNS"]


class TokenProxy:
    """The proxy route, its SNI name computed at the first identity-binding mount and kept once found.

    A failed computation is not kept: the next identity-binding mount tries again (the API server may have
    been restarting), so a daemon started during an outage recovers without a restart."""

    def __init__(self, settings: TokenProxySettings,
                 read_names: Callable[[str, int, str, float], list[str]] = api_server_dns_names) -> None:
        self.settings = settings
        self._read_names = read_names
        self._lock = threading.Lock()
        self._sni_name = settings.sni_name

    def route(self, deadline: float) -> ProxyRoute:
        with self._lock:
            if not self._sni_name:
                self._sni_name = self._compute_sni_name(deadline)
            return ProxyRoute(self.settings.url, self._sni_name, self.settings.ca_file)

    def _compute_sni_name(self, deadline: float) -> str:
        host, port, ca_file = API_SERVER_HOST, self.settings.api_server_port, self.settings.ca_file
        timeout = max(0.1, min(DISCOVERY_TIMEOUT_SECONDS, deadline - time.monotonic()))
        where = f"the API server's certificate ({host}:{port}, trusted with {ca_file})"
        try:
            names = self._read_names(host, port, ca_file, timeout)
        except FileNotFoundError:
            raise ProviderError(
                ErrorKind.UNAUTHENTICATED,
                f"identity binding: cannot compute the token proxy's SNI name: the cluster CA file {ca_file} does "
                "not exist (the provider's pod needs its service account's ca.crt, or set --token-proxy-ca-file); "
                f"or {_SET_SNI}",
            ) from None
        except ssl.SSLError as exc:
            raise ProviderError(
                ErrorKind.UNAUTHENTICATED,
                f"identity binding: cannot compute the token proxy's SNI name from {where}: TLS failed "
                f"({_reason(exc)}); check --token-proxy-ca-file, or {_SET_SNI}",
            ) from None
        except OSError as exc:
            raise ProviderError(
                ErrorKind.UNAVAILABLE,
                f"identity binding: cannot compute the token proxy's SNI name: cannot reach {where} "
                f"({_reason(exc)}); the driver retries the mount; outside AKS, {_SET_SNI}",
            ) from None
        cluster_id = cluster_id_from_names(names)
        if cluster_id is None:
            raise ProviderError(
                ErrorKind.UNAUTHENTICATED,
                f"identity binding: cannot compute the token proxy's SNI name: {where} has no DNS name "
                "hcp-kubernetes.<cluster id>.svc.cluster.local (is this an AKS cluster with identity bindings?); "
                f"{_SET_SNI}",
            )
        return sni_name_for_cluster(cluster_id)


def _reason(exc: OSError) -> str:
    if isinstance(exc, ssl.SSLError):
        # Set by a real handshake; an error built by hand has only its arguments.
        found = getattr(exc, "verify_message", None) or getattr(exc, "reason", None) or exc.strerror
        return str(found or type(exc).__name__)
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc.strerror or type(exc).__name__)


def tls_refused(exc: BaseException) -> bool:
    """True when a TLS handshake (not the network) failed somewhere in the exception's chain."""
    return any(isinstance(e, ssl.SSLError) for e in exception_chain(exc))


def transport_reason(exc: BaseException) -> str:
    """The root of a failed HTTP request in a few words ("Connection refused", "Hostname mismatch, ...")
    rather than the layers of requests and urllib3 around it."""
    chain = exception_chain(exc)
    for wanted in (ssl.SSLError, TimeoutError, OSError):
        for current in chain:
            if isinstance(current, wanted) and (not isinstance(current, OSError) or current.strerror
                                                 or isinstance(current, (ssl.SSLError, TimeoutError))):
                return _reason(current)
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]
