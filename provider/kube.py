"""A minimal Kubernetes API client for one call: TokenRequest, a pod-bound service-account token.

Used when the driver sent no token for a backend's audience (the CSIDriver has no `tokenRequests`).
Credentials come from the in-cluster service account (re-read on every call: kubelet rotates it) or
from the first file of KUBECONFIG (token, token file or client certificate; exec plugins are not
supported). Standard library only. The token never appears in an error or a log line.
"""

from __future__ import annotations

import json
import os
import ssl
import tempfile
import threading
import urllib.error
import urllib.request
from base64 import b64decode
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import yaml

from provider.redaction import redact_text

IN_CLUSTER_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
IN_CLUSTER_CA_FILE = os.path.join(IN_CLUSTER_DIR, "ca.crt")
MIN_EXPIRATION_SECONDS = 600  # the API server's minimum; kubelet asks for the same for tokenRequests


class KubeUnavailable(Exception):
    """No Kubernetes API credentials: neither in a cluster nor a KUBECONFIG."""


class KubeError(Exception):
    """The API server refused or could not be reached; `status` is the HTTP status (0: no answer)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class IssuedToken:
    token: str = field(repr=False)
    expiration: str


@dataclass(frozen=True)
class KubeConnection:
    server: str
    ssl_context: ssl.SSLContext | None = field(default=None, compare=False)
    token: str = field(default="", repr=False)
    token_file: str = ""

    def bearer(self) -> str:
        if self.token_file:
            with open(self.token_file) as handle:
                return handle.read().strip()
        return self.token


def load_connection(environ: Mapping[str, str]) -> KubeConnection:
    """In-cluster credentials when running in a pod, else the current context of KUBECONFIG."""
    host, port = environ.get("KUBERNETES_SERVICE_HOST"), environ.get("KUBERNETES_SERVICE_PORT")
    token_file = os.path.join(IN_CLUSTER_DIR, "token")
    if host and port and os.path.exists(token_file):
        context = ssl.create_default_context(cafile=IN_CLUSTER_CA_FILE)
        server = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
        return KubeConnection(server=server, ssl_context=context, token_file=token_file)
    paths = [p for p in environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    if not paths:
        raise KubeUnavailable("not running in a cluster and KUBECONFIG is not set")
    return _from_kubeconfig(paths[0])


def _from_kubeconfig(path: str) -> KubeConnection:
    try:
        with open(path) as handle:
            config = yaml.safe_load(handle) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise KubeUnavailable(f"cannot read KUBECONFIG {path}: {type(exc).__name__}") from None
    base = os.path.dirname(os.path.abspath(path))
    context_name = config.get("current-context", "")
    context = _named(config.get("contexts"), context_name, "context", path)
    cluster = _named(config.get("clusters"), context.get("cluster", ""), "cluster", path)
    user = _named(config.get("users"), context.get("user", ""), "user", path)
    server = str(cluster.get("server", "")).rstrip("/")
    if not server:
        raise KubeUnavailable(f"KUBECONFIG {path}: cluster {context.get('cluster')!r} has no server")
    ssl_context = None
    if server.startswith("https://"):
        ssl_context = _ssl_context(cluster, user, base)
    if user.get("exec") or user.get("auth-provider"):
        raise KubeUnavailable(f"KUBECONFIG {path}: user {context.get('user')!r} needs an exec or auth-provider "
                              "plugin, which this provider does not run; use a token or a client certificate")
    token_file = _resolve(base, user.get("tokenFile", ""))
    return KubeConnection(server=server, ssl_context=ssl_context, token=str(user.get("token", "")),
                          token_file=token_file)


def _named(items: Any, name: str, kind: str, path: str) -> dict[str, Any]:
    for item in items or []:
        if isinstance(item, dict) and item.get("name") == name:
            value = item.get(kind) or {}
            return value if isinstance(value, dict) else {}
    raise KubeUnavailable(f"KUBECONFIG {path}: no {kind} named {name!r}")


def _resolve(base: str, path: str) -> str:
    return os.path.join(base, path) if path and not os.path.isabs(path) else path


def _ssl_context(cluster: Mapping[str, Any], user: Mapping[str, Any], base: str) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if cluster.get("insecure-skip-tls-verify"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif cluster.get("certificate-authority-data"):
        context.load_verify_locations(cadata=b64decode(cluster["certificate-authority-data"]).decode())
    elif cluster.get("certificate-authority"):
        context.load_verify_locations(cafile=_resolve(base, cluster["certificate-authority"]))
    cert_data, key_data = user.get("client-certificate-data"), user.get("client-key-data")
    if cert_data and key_data:
        # ssl loads certificates from files only: write them to a private temporary directory.
        with tempfile.TemporaryDirectory(prefix="kubecert-") as directory:
            cert, key = os.path.join(directory, "tls.crt"), os.path.join(directory, "tls.key")
            for name, data in ((cert, cert_data), (key, key_data)):
                with open(os.open(name, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as handle:
                    handle.write(b64decode(data))
            context.load_cert_chain(cert, key)
    elif user.get("client-certificate") and user.get("client-key"):
        context.load_cert_chain(_resolve(base, user["client-certificate"]), _resolve(base, user["client-key"]))
    return context


class TokenRequester:
    """Requests pod-bound tokens; the connection is loaded on first use and kept (tokens re-read)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = dict(os.environ if environ is None else environ)
        self._connection: KubeConnection | None = None
        self._lock = threading.Lock()

    def connection(self) -> KubeConnection:
        with self._lock:
            if self._connection is None:
                self._connection = load_connection(self._environ)
            return self._connection

    def request_token(
        self,
        namespace: str,
        service_account: str,
        pod_name: str,
        pod_uid: str,
        audiences: Sequence[str],
        timeout: float,
        expiration_seconds: int = MIN_EXPIRATION_SECONDS,
    ) -> IssuedToken:
        """POST serviceaccounts/<sa>/token bound to the pod; raises KubeUnavailable or KubeError."""
        connection = self.connection()
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "audiences": list(audiences),
                "expirationSeconds": expiration_seconds,
                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": pod_name, "uid": pod_uid},
            },
        }
        url = (f"{connection.server}/api/v1/namespaces/{quote(namespace, safe='')}/serviceaccounts/"
               f"{quote(service_account, safe='')}/token")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        bearer = connection.bearer()
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout, context=connection.ssl_context) as answer:
                status = json.load(answer).get("status") or {}
        except urllib.error.HTTPError as exc:
            raise KubeError(exc.code, _status_message(exc)) from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise KubeError(0, f"cannot reach the Kubernetes API at {connection.server}: {reason}") from None
        token = status.get("token")
        if not isinstance(token, str) or not token:
            raise KubeError(200, "the Kubernetes API answered the TokenRequest without a token")
        return IssuedToken(token=token, expiration=str(status.get("expirationTimestamp", "")))


def _status_message(exc: urllib.error.HTTPError) -> str:
    try:
        message = str(json.loads(exc.read()).get("message", ""))
    except (ValueError, AttributeError, OSError):
        message = ""
    return redact_text(message or f"HTTP {exc.code}")
