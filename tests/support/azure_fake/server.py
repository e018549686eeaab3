"""AzureFake: one HTTPS server playing Key Vault, Entra ID and IMDS for every cloud, with fault injection.

It listens on 127.0.0.1 (a free port) and, for a daemon in a private network namespace, optionally on a
unix socket that the namespace's 127.0.0.1:443 is relayed to. Requests are routed by Host header and
path, the way the real services' host names split them, except that the AKS cluster's API server and
identity-binding token proxy (cluster.py) are told apart, as on AKS, by the TLS SNI name.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socketserver
import ssl
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.support.azure_fake.cluster import API_SERVER_HOST, FakeCluster
from tests.support.azure_fake.entra import Directory, EntraError
from tests.support.azure_fake.keyvault import FakeCloud, KeyVaultApi, Reply, dumps, error
from tests.support.azure_fake.pki import TestCA
from tests.support.azure_fake.store import Vault

PUBLIC = FakeCloud("vault.azure.net", "https://vault.azure.net", "login.microsoftonline.com", "https://login.windows.net")
US_GOVERNMENT = FakeCloud("vault.usgovcloudapi.net", "https://vault.usgovcloudapi.net", "login.microsoftonline.us",
                          "https://login.microsoftonline.us")
CHINA = FakeCloud("vault.azure.cn", "https://vault.azure.cn", "login.chinacloudapi.cn", "https://login.chinacloudapi.cn")
GERMANY = FakeCloud("vault.microsoftazure.de", "https://vault.microsoftazure.de", "login.microsoftonline.de",
                    "https://login.microsoftonline.de")
STACK = FakeCloud("vault.azurestack.test", "https://vault.azurestack.test", "login.azurestack.test",
                  "https://login.azurestack.test")
CLOUDS = (PUBLIC, US_GOVERNMENT, CHINA, GERMANY, STACK)
IMDS_HOST = "imds.azure-fake.test"
_TOKEN_PATH = re.compile(r"^/([^/]+)/oauth2/v2\.0/token$")
_DISCOVERY_PATH = re.compile(r"^/([^/]+)/v2\.0/\.well-known/openid-configuration$")


@dataclass
class Fault:
    """Answer matching requests with `status` (and Retry-After), or delay them, `times` times (None: always)."""

    path: str  # a regex searched in the path
    status: int | None = 429
    times: int | None = 1
    retry_after: str | None = None
    delay: float = 0.0
    host: str | None = None  # a regex searched in the host
    hits: int = 0

    def matches(self, host: str, path: str) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        return re.search(self.path, path) is not None and (self.host is None or re.search(self.host, host) is not None)


@dataclass(frozen=True)
class Record:
    method: str
    host: str
    path: str
    status: int
    client_id: str = ""
    authorized: bool = False
    at: float = field(default_factory=time.monotonic)
    face: str = ""  # the cluster's "apiserver" or "proxy" (picked by SNI), "" for the rest of the fake


class AzureFake:
    def __init__(self, workdir: Path, tenant_id: str | None = None, page_size: int = 2) -> None:
        self.workdir = workdir
        self.directory = Directory(tenant_id or str(uuid.uuid4()))
        self.api = KeyVaultApi(self.directory, page_size)
        self.vaults: dict[str, tuple[Vault, FakeCloud]] = {}  # host → vault
        self.faults: list[Fault] = []
        self.requests: list[Record] = []
        # Bumped by clear(): a request is recorded only in the generation it arrived in, so one that a
        # fault held past the end of its test (a delay) never shows up in the next test's records.
        self.generation = 0
        self._lock = threading.Lock()
        sans = ("localhost", "127.0.0.1", IMDS_HOST, "login.windows.net",
                *(f"*.{c.suffix}" for c in CLOUDS), *(c.login_host for c in CLOUDS))
        self.ca = TestCA(workdir / "tls", sans)
        self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._tls.load_cert_chain(self.ca.cert_file, self.ca.key_file)
        self.cluster = FakeCluster(self.directory, workdir / "cluster")
        self._tls.sni_callback = self._pick_certificate
        self._servers: list[socketserver.BaseServer] = []
        self._unix_dir: str | None = None
        self.port = 0

    @property
    def tenant_id(self) -> str:
        return self.directory.tenant_id

    # ----------------------------------------------------------------------------- set-up
    def add_vault(self, name: str, cloud: FakeCloud = PUBLIC, tenant_id: str | None = None) -> Vault:
        vault = Vault(name, tenant_id or self.tenant_id)
        self.vaults[f"{name}.{cloud.suffix}".lower()] = (vault, cloud)
        return vault

    def fail(self, path: str, status: int = 429, times: int | None = 1, retry_after: str | None = None,
             delay: float = 0.0, host: str | None = None) -> Fault:
        fault = Fault(path, status, times, retry_after, delay, host)
        with self._lock:
            self.faults.append(fault)
        return fault

    def hostnames(self) -> list[str]:
        """Every name this fake answers for: the vaults, the Entra ID hosts, the IMDS stand-in."""
        return sorted({*self.vaults, "login.windows.net", IMDS_HOST, API_SERVER_HOST, *(c.login_host for c in CLOUDS)})

    def serves(self, host: str) -> bool:
        return host.lower() in self.hostnames()

    def records(self, path: str = "", method: str | None = None) -> list[Record]:
        with self._lock:
            return [r for r in self.requests if re.search(path, r.path) and (method is None or r.method == method)]

    def clear(self) -> None:
        with self._lock:
            self.generation += 1
            self.requests.clear()
            self.faults.clear()

    def record(self, generation: int, record: Record) -> None:
        with self._lock:
            if generation == self.generation:
                self.requests.append(record)

    # ----------------------------------------------------------------------------- life cycle
    def start(self) -> AzureFake:
        server = _TcpServer(("127.0.0.1", 0), self._handler())
        self.port = server.server_address[1]
        self._run(server)
        return self

    def unix_socket(self) -> str:
        """A unix socket that also answers (for a daemon in a network namespace, through a relay)."""
        if self._unix_dir is None:
            self._unix_dir = tempfile.mkdtemp(prefix="azfake-")  # short: unix socket paths are limited
            self._run(_UnixServer(os.path.join(self._unix_dir, "fake.sock"), self._handler()))
        return os.path.join(self._unix_dir, "fake.sock")

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers.clear()
        if self._unix_dir is not None:
            shutil.rmtree(self._unix_dir, ignore_errors=True)
            self._unix_dir = None

    def __enter__(self) -> AzureFake:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self, server: socketserver.BaseServer) -> None:
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        self._servers.append(server)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(_Handler):
            pass

        Handler.fake = fake
        return Handler

    # ----------------------------------------------------------------------------- routing
    def _pick_certificate(self, tls: ssl.SSLObject | ssl.SSLSocket, server_name: str | None,
                          _context: ssl.SSLContext) -> None:
        cluster_context = self.cluster.context_for(server_name)
        if cluster_context is not None:
            tls.context = cluster_context

    def route(self, method: str, host: str, path: str, query: dict[str, str], headers: dict[str, str],
              form: dict[str, str], face: str = "") -> Reply:
        with self._lock:
            fault = next((f for f in self.faults if f.matches(host, path)), None)
            if fault is not None:
                fault.hits += 1
        if fault is not None:
            time.sleep(fault.delay)
            if fault.status is not None:
                extra = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                code = "Throttled" if fault.status == 429 else "InternalServerError"
                return error(fault.status, code, f"injected {fault.status}", headers=extra)
        if face:
            return self.cluster.answer(face, method, path, form, self._resources(), _TOKEN_PATH)
        if path == "/metadata/identity/oauth2/token":
            return self._imds(query, headers)
        discovery = _DISCOVERY_PATH.match(path)
        if discovery and method == "GET":
            tenant = discovery.group(1)
            base = f"https://{host}/{tenant}"
            return Reply(200, {"token_endpoint": f"{base}/oauth2/v2.0/token",
                               "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                               "issuer": f"https://{host}/{tenant}/v2.0",
                               "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"]}, {})
        if path == "/common/discovery/instance" and method == "GET":
            # MSAL's instance discovery; it also asks after a failed token request.
            authorize = urlsplit(query.get("authorization_endpoint", ""))
            tenant = authorize.path.strip("/").split("/")[0] or "common"
            return Reply(200, {"tenant_discovery_endpoint":
                               f"https://{host}/{tenant}/v2.0/.well-known/openid-configuration",
                               "api-version": "1.1",
                               "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}]},
                         {})
        token = _TOKEN_PATH.match(path)
        if token and method == "POST":
            try:
                return Reply(200, self.directory.client_credentials(token.group(1), form, self._resources()), {})
            except EntraError as exc:
                return Reply(exc.status, exc.body, {})
        entry = self.vaults.get(host.split(":")[0].lower())
        if entry is not None and method == "GET":
            vault, cloud = entry
            return self.api.handle(vault, cloud, host, path, query, headers.get("authorization"))
        return error(404, "NotFound", f"the fake does not serve {method} {host}{path}")

    def _imds(self, query: dict[str, str], headers: dict[str, str]) -> Reply:
        if headers.get("metadata", "").lower() != "true":
            return Reply(400, {"error": "invalid_request", "error_description": "Required metadata header not "
                                                                                "specified"}, {})
        try:
            body = self.directory.managed_identity(query.get("client_id"), query.get("resource", ""),
                                                   self._resources())
        except EntraError as exc:
            return Reply(exc.status, {"error": exc.body["error"], "error_description": str(exc)}, {})
        return Reply(200, body, {})

    def _resources(self) -> set[str]:
        return {c.resource for c in CLOUDS}


class _Handler(BaseHTTPRequestHandler):
    fake: AzureFake
    protocol_version = "HTTP/1.1"
    server_version = "azure-fake"

    def setup(self) -> None:
        # The TLS handshake runs in the connection's own thread, not in the accept loop.
        self.request = self.server.tls.wrap_socket(self.request, server_side=True)  # type: ignore[attr-defined]
        self.face = self.fake.cluster.face_of(self.request.context)
        super().setup()

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        parts = urlsplit(self.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        headers = {key.lower(): value for key, value in self.headers.items()}
        length = int(headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        form = dict(parse_qsl(raw.decode(errors="replace"))) if method == "POST" else {}
        host = headers.get("host", "")
        generation = self.fake.generation
        reply = self.fake.route(method, host, parts.path, query, headers, form, self.face)
        self.fake.record(generation, Record(method, host, parts.path, reply.status,
                                            form.get("client_id") or query.get("client_id", ""),
                                            "authorization" in headers, face=self.face))
        body = dumps(reply.body)
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-ms-request-id", str(uuid.uuid4()))
        for key, value in reply.headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _TcpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type[_Handler]) -> None:
        super().__init__(address, handler)
        self.tls = handler.fake._tls


class _UnixServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def __init__(self, path: str, handler: type[_Handler]) -> None:
        super().__init__(path, handler)
        self.tls = handler.fake._tls


def cloud_file(directory: Path, cloud: FakeCloud = STACK) -> Path:
    """Write the cloudEnvFileName JSON for a fake cloud and return its path."""
    path = directory / f"{cloud.suffix}.json"
    path.write_text(json.dumps(cloud.environment()))
    return path
