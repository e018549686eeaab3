"""A real OpenBao dev server for the tests, configured the way an operator would with the `bao` CLI.

The server listens on 127.0.0.1 only: plain HTTP (the dev listener), TLS with a required client
certificate (a CA the tests own, server name `vault.internal` only) and a unix socket; a file audit
device, declared in its config, lets tests count the calls the provider makes.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

BAO = str(Path(sys.executable).with_name("bao")) if Path(sys.executable).with_name("bao").exists() else "bao"
TLS_SERVER_NAME = "vault.internal"


def free_port(pair: bool = False) -> int:
    """A free 127.0.0.1 port (and, with pair, the next one free too: bao puts its cluster port there)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if not pair or port >= 65535:
            return port
        with socket.socket() as probe, contextlib.suppress(OSError):
            probe.bind(("127.0.0.1", port + 1))
            return port
    raise RuntimeError("no free port pair on 127.0.0.1")


@dataclass(frozen=True)
class TLSFiles:
    ca: Path  # the CA that signed the server and client certificates
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # a CA that signed nothing here


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _certificate(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Certificate | None,
                 issuer_key: ec.EllipticCurvePrivateKey | None, *, ca: bool = False, dns: tuple[str, ...] = (),
                 usage: x509.ObjectIdentifier | None = None) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer.subject if issuer else name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if dns:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(d) for d in dns]), critical=False)
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())


def make_tls_files(directory: Path) -> TLSFiles:
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, other_key, server_key, client_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(4))
    ca = _certificate("test vault CA", ca_key, None, None, ca=True)
    other = _certificate("unrelated CA", other_key, None, None, ca=True)
    server = _certificate(TLS_SERVER_NAME, server_key, ca, ca_key, dns=(TLS_SERVER_NAME,),
                          usage=ExtendedKeyUsageOID.SERVER_AUTH)
    client = _certificate("csi-provider", client_key, ca, ca_key, usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    files = TLSFiles(*(directory / n for n in ("ca.pem", "server.pem", "server-key.pem", "client.pem",
                                                "client-key.pem", "other-ca.pem")))
    for path, data in ((files.ca, ca.public_bytes(serialization.Encoding.PEM)),
                       (files.server_cert, server.public_bytes(serialization.Encoding.PEM)),
                       (files.server_key, _key_pem(server_key)),
                       (files.client_cert, client.public_bytes(serialization.Encoding.PEM)),
                       (files.client_key, _key_pem(client_key)),
                       (files.other_ca, other.public_bytes(serialization.Encoding.PEM))):
        path.write_bytes(data)
    return files


def _die_with_parent() -> None:
    """Linux: the server gets SIGTERM when the test process dies, even if pytest is killed."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, 15)  # PR_SET_PDEATHSIG, SIGTERM


class OpenBao:
    """`bao server -dev` on free 127.0.0.1 ports; stop() (or the context manager) ends it."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.root_token = "root-" + secrets.token_hex(8)
        self.port = free_port(pair=True)
        self.tls_port = free_port()
        self.tls_cluster_port = free_port()
        self.address = f"http://127.0.0.1:{self.port}"
        self.tls_address = f"https://127.0.0.1:{self.tls_port}"
        self.socket_path = workdir / "bao.sock"
        self.unix_address = f"unix://{self.socket_path}"
        self.audit_path = workdir / "audit.log"
        self.tls = make_tls_files(workdir / "tls")
        config = workdir / "server.hcl"
        config.write_text(f"""
audit "file" "calls" {{
  options {{
    file_path = "{self.audit_path}"
  }}
}}
listener "tcp" {{
  address = "127.0.0.1:{self.tls_port}"
  cluster_address = "127.0.0.1:{self.tls_cluster_port}"
  tls_cert_file = "{self.tls.server_cert}"
  tls_key_file = "{self.tls.server_key}"
  tls_client_ca_file = "{self.tls.ca}"
  tls_require_and_verify_client_cert = true
}}
listener "unix" {{
  address = "{self.socket_path}"
  tls_disable = true
}}
""")
        self.log_path = workdir / "bao.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [BAO, "server", "-dev", f"-dev-root-token-id={self.root_token}",
             f"-dev-listen-address=127.0.0.1:{self.port}", f"-config={config}"],
            stdout=self._log, stderr=subprocess.STDOUT, env=self._clean_env(), cwd=workdir,
            preexec_fn=_die_with_parent,
        )
        self._wait_ready()

    @staticmethod
    def _clean_env() -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}

    def _wait_ready(self, timeout: float = 20.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.process.poll() is not None:
                raise RuntimeError(f"bao exited with {self.process.returncode}: {self.log_path.read_text()[-2000:]}")
            with contextlib.suppress(OSError, urllib.error.URLError), urllib.request.urlopen(
                f"{self.address}/v1/sys/health", timeout=1
            ) as answer:
                if answer.status == 200:
                    return
            time.sleep(0.05)
        raise TimeoutError("bao did not become ready")

    def bao(self, *args: str, namespace: str = "", stdin: str | None = None) -> str:
        """Run the bao CLI as the operator (root token) against this server; output as text."""
        env = self._clean_env() | {"BAO_ADDR": self.address, "BAO_TOKEN": self.root_token}
        if namespace:
            env["BAO_NAMESPACE"] = namespace
        done = subprocess.run([BAO, *args], env=env, input=stdin, capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            raise RuntimeError(f"bao {' '.join(args[:3])} failed: {done.stderr.strip()}")
        return done.stdout

    def api(self, method: str, path: str, body: Any = None, namespace: str = "") -> Any:
        """A direct API call with the root token (for assertions); the parsed JSON or None."""
        headers = {"X-Vault-Token": self.root_token}
        if namespace:
            headers["X-Vault-Namespace"] = namespace
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.address}/v1/{path}", data=data, headers=headers, method=method)
        with urllib.request.urlopen(request, timeout=10) as answer:
            text = answer.read()
        return json.loads(text) if text.strip() else None

    def audit_requests(self, since: int = 0) -> list[dict[str, Any]]:
        """The `request` records of the audit log from line `since` on."""
        lines = self.audit_path.read_text().splitlines()[since:] if self.audit_path.exists() else []
        return [r["request"] for r in map(json.loads, lines) if r.get("type") == "request"]

    def audit_mark(self) -> int:
        return len(self.audit_path.read_text().splitlines()) if self.audit_path.exists() else 0

    def count(self, since: int, path: str, namespace: str = "") -> int:
        """How many requests for `path` (in `namespace`) the server audited since the mark."""
        def in_namespace(r: dict[str, Any]) -> bool:
            found = (r.get("namespace") or {}).get("path", "").strip("/")
            return found == namespace.strip("/")
        return sum(1 for r in self.audit_requests(since) if r.get("path") == path and in_namespace(r))

    def seal(self) -> None:
        self.bao("operator", "seal")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()

    def __enter__(self) -> OpenBao:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ------------------------------------------------------------------------------ the operator's configuration
# Mirrors the official provider's e2e setup (facts §4) plus the seed article's `database` role, so the
# tests can run the same SPCs. Values are planted here and read back by the tests from these constants.

TEST_NS = "test"
KV2 = {  # KV v2 at secret/
    "kv1": {"bar1": "hello1"},
    "kv2": {"bar2": "hello2"},
    "kv-sync1": {"bar1": "hello-sync1"},
    "kv-sync2": {"bar2": "hello-sync2"},
    "kv-sync3": {"bar3": "aGVsbG8tc3luYzM="},  # base64 of hello-sync3
    "kv-hex": {"bin": "00ff10e2"},
    "kv-custom-audience": {"bar": "hello-custom-audience"},
    "db-pass": {"password": "db-secret-password-8c1d"},
    "db-config": {"host": "pg.example.internal", "port": "5432", "dbname": "app", "username": "app",
                  "password": "db-config-password-2b7e"},  # deploy/examples/vault/spc-vault-db-config.yaml
    "marker": {"value": "marker-secret-value-51f0!"},  # neither base64 nor hex; must never be logged
    "typed": {"count": 10, "ratio": 1.50, "enabled": True, "nothing": None,
              "nested": {"baz": "zap", "bar": "hop", "cheeses": {"cheddar": "8", "brie": 9}},
              "values": [6, "stilton", True], "html": "<a&b>"},
}
KV1 = {"app": {"username": "app-user", "password": "kv1-pass-4e2b", "data": "string data"}}  # KV v1 at kv1/


def planted_values() -> list[str]:
    """Every secret string the configuration plants that is long enough to search logs for."""
    found = [v for d in (*KV2.values(), *KV1.values(), *NAMESPACED.values()) for v in d.values()
             if isinstance(v, str) and len(v) >= 8]
    return found
NAMESPACE = "acceptance"
NAMESPACED = {"kv1": {"bar1": "hello-namespaces"}}  # KV v2 at secret/ inside the namespace
PKI_ROLE = "example-dot-com"
POLICIES = {
    "kv-policy": 'path "secret/*" { capabilities = ["read", "list"] }\npath "kv1/*" { capabilities = ["read"] }',
    "pki-policy": f'path "pki/issue/{PKI_ROLE}" {{ capabilities = ["create", "update"] }}',
}
# role → (service account, namespace, policies, audience) for both auth methods.
ROLES = {
    "kv-role": ("nginx-kv", TEST_NS, "kv-policy", "vault"),
    "pki-role": ("nginx-pki", TEST_NS, "pki-policy", "vault"),
    "all-role": ("nginx-all", TEST_NS, "kv-policy,pki-policy", "vault"),
    "kv-custom-audience-role": ("nginx-kv", TEST_NS, "kv-policy", "custom-audience"),
    "no-policy-role": ("nginx-kv", TEST_NS, "default", "vault"),
    "database": ("webapp-sa", "default", "kv-policy", "vault"),
    "app-config": ("webapp-sa", "default", "kv-policy", "vault"),  # deploy/examples/vault/spc-vault-db-config.yaml
}
JWT_ROLES = {"jwt-kv-role": ROLES["kv-role"], "database": ROLES["database"], "pki-role": ROLES["pki-role"],
             "app-config": ROLES["app-config"],
             "no-policy-role": ROLES["no-policy-role"], "all-role": ROLES["all-role"],
             # deploy/examples/vault/spc-vault-pki.yaml
             "webapp-pki": ("webapp-sa", "default", "pki-policy", "vault-pki")}


def configure(bao: OpenBao, issuer_pem: str, issuer: str, kube_url: str) -> None:
    """JWT auth trusting the tests' issuer key, Kubernetes auth against the stub TokenReview endpoint,
    KV v1 and v2, PKI, a namespace with its own Kubernetes auth and KV. Written to the HTTP API, as
    an operator's Terraform would (the `bao` CLI costs a process start per step)."""
    for name, policy in POLICIES.items():
        bao.api("PUT", f"sys/policies/acl/{name}", {"policy": policy})
    bao.api("POST", "sys/auth/jwt", {"type": "jwt"})
    bao.api("POST", "auth/jwt/config", {"jwt_validation_pubkeys": [issuer_pem], "bound_issuer": issuer})
    for role, (account, namespace, policies, audience) in JWT_ROLES.items():
        bao.api("POST", f"auth/jwt/role/{role}", {
            "role_type": "jwt", "user_claim": "sub", "bound_audiences": [audience],
            "bound_subject": f"system:serviceaccount:{namespace}:{account}",
            "token_policies": policies.split(","), "token_ttl": "20m"})
    _kubernetes_auth(bao, kube_url, ROLES, "")
    for name, data in KV2.items():
        bao.api("POST", f"secret/data/{name}", {"data": data})
    name, versions = VERSIONED
    for data in versions:
        bao.api("POST", f"secret/data/{name}", {"data": data})
    bao.api("POST", "sys/mounts/kv1", {"type": "kv", "options": {"version": "1"}})
    for name, data in KV1.items():
        bao.api("POST", f"kv1/{name}", data)
    bao.api("POST", "sys/mounts/pki", {"type": "pki", "config": {"max_lease_ttl": "87600h"}})
    # EC keys: an RSA key per issuance would cost the suite seconds.
    bao.api("POST", "pki/root/generate/internal", {"common_name": "example.com", "ttl": "8760h",
                                                   "key_type": "ec", "key_bits": 256})
    bao.api("POST", f"pki/roles/{PKI_ROLE}", {"allowed_domains": "example.com", "allow_subdomains": True,
                                              "max_ttl": "72h", "key_type": "ec", "key_bits": 256})
    bao.api("POST", f"sys/namespaces/{NAMESPACE}", {})
    bao.api("POST", "sys/mounts/secret", {"type": "kv", "options": {"version": "2"}}, namespace=NAMESPACE)
    bao.api("PUT", "sys/policies/acl/kv-policy", {"policy": POLICIES["kv-policy"]}, namespace=NAMESPACE)
    _kubernetes_auth(bao, kube_url, {"kv-role": ROLES["kv-role"]}, NAMESPACE)
    for name, data in NAMESPACED.items():
        bao.api("POST", f"secret/data/{name}", {"data": data}, namespace=NAMESPACE)


def _kubernetes_auth(bao: OpenBao, kube_url: str, roles: dict[str, tuple[str, str, str, str]], namespace: str) -> None:
    bao.api("POST", "sys/auth/kubernetes", {"type": "kubernetes"}, namespace=namespace)
    # The stub API server speaks plain HTTP; the CA is required by the config but unused.
    bao.api("POST", "auth/kubernetes/config", {"kubernetes_host": kube_url, "disable_local_ca_jwt": True,
                                               "kubernetes_ca_cert": bao.tls.ca.read_text()}, namespace=namespace)
    for role, (account, pod_namespace, policies, audience) in roles.items():
        bao.api("POST", f"auth/kubernetes/role/{role}", {
            "bound_service_account_names": [account], "bound_service_account_namespaces": [pod_namespace],
            "audience": audience, "token_policies": policies.split(","), "token_ttl": "20m"}, namespace=namespace)


# ------------------------------------------------------------------------------------- one shared cluster
VERSIONED = ("versioned", [{"v": "one"}, {"v": "two"}])  # a KV v2 secret with two versions


@dataclass
class Cluster:
    """The configured OpenBao, the stub kube-apiserver and the issuer they trust."""

    bao: OpenBao
    kube: Any  # tests.support.kubeapi.KubeAPI
    issuer: Any  # tests.support.service_accounts.Issuer

    def pod_token(self, namespace: str, service_account: str, pod_name: str, pod_uid: str,
                  audience: str = "vault") -> str:
        return str(self.issuer.pod_token(namespace=namespace, service_account=service_account, pod_name=pod_name,
                                         pod_uid=pod_uid, audience=audience))

    def stop(self) -> None:
        self.bao.stop()
        self.kube.stop()


_shared: Cluster | None = None


def shared_cluster(workdir: Path) -> Cluster:
    """One configured cluster per test process (integration and e2e modules share it), stopped at exit."""
    global _shared
    if _shared is None:
        import atexit

        from tests.support.kubeapi import KubeAPI
        from tests.support.service_accounts import Issuer

        issuer = Issuer()
        kube = KubeAPI(issuer)
        bao = OpenBao(workdir)
        try:
            configure(bao, issuer.public_pem, issuer.issuer, kube.url)
        except BaseException:
            bao.stop()
            kube.stop()
            raise
        _shared = Cluster(bao, kube, issuer)
        atexit.register(_shared.stop)
    return _shared


def vault_spc(objects: str, name: str = "vault-test", **parameters: str) -> dict[str, Any]:
    """A SecretProviderClass manifest for `provider: vault` (objects as YAML text, as users write it)."""
    return {"apiVersion": "secrets-store.csi.x-k8s.io/v1", "kind": "SecretProviderClass",
            "metadata": {"name": name}, "spec": {"provider": "vault", "parameters": {"objects": objects, **parameters}}}


def daemon_env(cluster: Cluster, directory: Path, kubeconfig: bool = True, **extra: str) -> dict[str, str]:
    """The daemon's environment: no Vault settings of the test runner's, KUBECONFIG to the stub API server."""
    env = {name: "" for name in os.environ if name.startswith(("VAULT_", "BAO_"))}
    env["KUBECONFIG"] = str(cluster.kube.write_kubeconfig(directory / "kubeconfig")) if kubeconfig else ""
    env.update(extra)
    return env


_TOKEN_SHAPES = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}|\b(?:hvs|hvb|s|b)\.[A-Za-z0-9]{20,}")


def leaks(text: str, cluster: Cluster) -> list[str]:
    """Secret values, JWTs, Vault tokens or the root token found in text (logs, error messages)."""
    found = [v for v in planted_values() if v in text]
    found += _TOKEN_SHAPES.findall(text)
    if cluster.bao.root_token in text:
        found.append("the root token")
    return found
