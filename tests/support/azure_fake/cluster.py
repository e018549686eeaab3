"""The AKS side of identity binding: the cluster CA, the API server's TLS face, and the token proxy.

AKS serves the identity-binding token proxy at the API server's address and picks it by the TLS SNI name:
a handshake that names `a<base32hex(sha256("identity-binding" + cluster id))>.ests.aks` gets the proxy's
certificate and its HTTP answers; any other name gets the API server's certificate, whose DNS names
include `hcp-kubernetes.<cluster id>.svc.cluster.local`. Both certificates come from the cluster's own CA,
which is not the CA of the rest of the fake. The proxy checks the pod's service-account token (its
issuer's signature, the audience api://AKSIdentityBinding) and the binding of the pod's service account
to the client ID, then asks Entra ID with its own assertion: one federated credential per identity,
whatever the number of service accounts and clusters.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import ssl
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import jwt

from tests.support.azure_fake.entra import EXCHANGE_AUDIENCE, App, Directory, EntraError
from tests.support.azure_fake.keyvault import Reply, error
from tests.support.azure_fake.pki import Issued, issue, new_key
from tests.support.service_accounts import Issuer

API_SERVER_HOST = "kubernetes.default.svc.cluster.local"
BINDING_AUDIENCE = "api://AKSIdentityBinding"
API_SERVER = "apiserver"
PROXY = "proxy"


def proxy_sni_name(cluster_id: str) -> str:
    digest = hashlib.sha256(f"identity-binding{cluster_id}".encode()).digest()
    return f"a{base64.b32hexencode(digest).decode().rstrip('=')}.ests.aks".lower()


class FakeCluster:
    def __init__(self, directory: Directory, workdir: Path, cluster_id: str | None = None) -> None:
        self.directory = directory
        self.cluster_id = cluster_id or secrets.token_hex(12)
        self.sni_name = proxy_sni_name(self.cluster_id)
        self.ca = issue("fake AKS cluster CA", new_key("ec"), ca=True, days=2)
        names = ("kubernetes", "kubernetes.default", "kubernetes.default.svc", API_SERVER_HOST)
        aks_api = issue("apiserver", new_key("ec"), self.ca, days=2,
                        sans=(*names, f"hcp-kubernetes.{self.cluster_id}.svc.cluster.local"))
        plain_api = issue("apiserver", new_key("ec"), self.ca, days=2, sans=names)
        proxy = issue("identity binding proxy", new_key("ec"), self.ca, days=2, sans=(self.sni_name,))
        workdir.mkdir(parents=True, exist_ok=True)
        self.ca_file = workdir / "ca.crt"
        self.ca_file.write_bytes(self.ca.pem)
        self._aks_api_tls = _server_context(workdir / "apiserver", aks_api, self.ca)
        self._plain_api_tls = _server_context(workdir / "apiserver-plain", plain_api, self.ca)
        self._proxy_tls = _server_context(workdir / "proxy", proxy, self.ca)
        # False: the API server's certificate has no hcp-kubernetes name (a cluster that is not AKS).
        self.aks = True
        self.issuer = Issuer(issuer=f"https://ib.oic.fake-aks.test/{uuid.uuid4()}/")
        directory.trust_issuer(self.issuer.issuer, self.issuer.key.public_key())
        self._bindings: set[tuple[str, str, str]] = set()
        self._federated: set[str] = set()
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------- set-up, from the tests
    def bind(self, app: App, namespace: str, service_account: str) -> None:
        """An identity binding for the app in this cluster, and the ClusterRole(Binding) that lets the
        service account use it."""
        with self._lock:
            self._bindings.add((app.client_id.lower(), namespace, service_account))
            if app.client_id.lower() not in self._federated:
                self._federated.add(app.client_id.lower())
                self.directory.federate(app, self.issuer.issuer, self._subject(app.client_id))

    # ------------------------------------------------------------------------- TLS
    def context_for(self, server_name: str | None) -> ssl.SSLContext | None:
        """The certificate a handshake with this SNI name gets; None: not the cluster's."""
        if server_name is None:
            return None
        if server_name.lower() == self.sni_name:
            return self._proxy_tls
        if server_name.lower() == API_SERVER_HOST or server_name.lower().endswith(".ests.aks"):
            return self._aks_api_tls if self.aks else self._plain_api_tls
        return None

    def face_of(self, context: ssl.SSLContext) -> str:
        if context is self._proxy_tls:
            return PROXY
        if context in (self._aks_api_tls, self._plain_api_tls):
            return API_SERVER
        return ""

    # ------------------------------------------------------------------------- HTTP
    def answer(self, face: str, method: str, path: str, form: dict[str, str], resources: set[str],
               token_path: Any) -> Reply:
        if face == API_SERVER:
            return Reply(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
                               "message": "the server could not find the requested resource", "code": 404}, {})
        found = token_path.match(path)
        if found is None or method != "POST":
            return error(404, "NotFound", f"the token proxy does not serve {method} {path}")
        try:
            return Reply(200, self._exchange(found.group(1), form, resources), {})
        except EntraError as exc:
            return Reply(exc.status, exc.body, {})

    def _exchange(self, tenant_id: str, form: dict[str, str], resources: set[str]) -> dict[str, Any]:
        assertion = form.get("client_assertion", "")
        client_id = form.get("client_id", "")
        try:
            issuer = str(jwt.decode(assertion, options={"verify_signature": False}).get("iss", ""))
            key = self.directory.issuers[issuer]
            claims = jwt.decode(assertion, key, algorithms=["RS256"], audience=BINDING_AUDIENCE)
        except (jwt.PyJWTError, KeyError):
            raise EntraError(401, "invalid_client", 700024, "the service account token is not valid for the "
                             f"identity binding proxy (issuer, signature, expiry, or audience {BINDING_AUDIENCE})"
                             ) from None
        namespace, _, service_account = str(claims.get("sub", "")).removeprefix("system:serviceaccount:").partition(":")
        with self._lock:
            bound = (client_id.lower(), namespace, service_account) in self._bindings
        if not bound:
            raise EntraError(403, "unauthorized_client", 70021,
                             f"service account {namespace}/{service_account} may not use managed identity "
                             f"{client_id} in this cluster")
        now = int(time.time())
        own = jwt.encode({"iss": self.issuer.issuer, "sub": self._subject(client_id), "aud": [EXCHANGE_AUDIENCE],
                          "iat": now, "nbf": now, "exp": now + 300, "jti": str(uuid.uuid4())},
                         self.issuer.key, algorithm="RS256")
        return self.directory.client_credentials(tenant_id, {**form, "client_assertion": own}, resources)

    def _subject(self, client_id: str) -> str:
        return f"aks:identity-binding:{client_id.lower()}"


def _server_context(directory: Path, leaf: Issued, ca: Issued) -> ssl.SSLContext:
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    cert.write_bytes(leaf.pem + ca.pem)
    key.write_bytes(leaf.key_pem)
    key.chmod(0o600)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context
