"""Credentials go only where the operator allowed (issue 13, items 1-5), through the socket against OpenBao.

Small HTTP servers on 127.0.0.1 stand for the places a hostile SPC would steer a pod's JWT or Vault token
to: a `recorder` that keeps every credential it is sent, a `redirector` that answers every request with a
redirect, and a `gateway` that serves OpenBao under /team-a/ and, like many gateways, resolves `..` and
percent-escapes before routing. Each test asserts the mount's answer and that no server that should see
nothing received a credential.
"""

from __future__ import annotations

import http.client
import posixpath
import shutil
import ssl
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import grpc
import pytest

from provider.localdriver import build_mount_request, call_mount
from tests.hardening.conftest import new_pod, vault_mount
from tests.support.daemon import Daemon, start_daemon
from tests.support.http import reply
from tests.support.openbao import KV2, TLS_SERVER_NAME, Cluster, daemon_env, vault_spc

OBJECTS = "- {objectName: secret-1, secretPath: secret/data/kv1, secretKey: bar1}"
EXPECTED = {"secret-1": KV2["kv1"]["bar1"].encode()}
DENIED, INVALID = grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.INVALID_ARGUMENT
CONTENT_MARKER = "outside-file-marker-" + uuid.uuid4().hex[:10]


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    vault_token: str = field(repr=False)
    body: str = field(repr=False)

    @property
    def credential(self) -> bool:
        return bool(self.vault_token) or '"jwt"' in self.body


class LoopbackServer:
    """An HTTP(S) server on 127.0.0.1 that records every request and answers as `answer` says."""

    def __init__(self, answer: Any, tls: ssl.SSLContext | None = None) -> None:
        self.answer = answer  # (server, handler, received) -> None: writes the response
        self.received: list[Received] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode(errors="replace") if length else ""
                seen = Received(self.command, self.path, self.headers.get("X-Vault-Token", ""), body)
                owner.received.append(seen)
                owner.answer(owner, self, seen)

            do_GET = do_POST = do_PUT = do_LIST = _any

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.address = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def credentials(self) -> list[Received]:
        return [r for r in self.received if r.credential]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)


def not_vault(server: LoopbackServer, handler: BaseHTTPRequestHandler, seen: Received) -> None:
    reply(handler, 404, b'{"errors":["this is not Vault"]}', {"Content-Type": "application/json"})


@dataclass
class Redirect:
    """Answers every request with `status` to `target` + the request's path and query."""

    target: str = ""
    status: int = 307
    location: str = ""  # when set, the Location header as is

    def __call__(self, server: LoopbackServer, handler: BaseHTTPRequestHandler, seen: Received) -> None:
        reply(handler, self.status, headers={"Location": self.location or self.target + handler.path})


def forward(upstream: str, handler: BaseHTTPRequestHandler, path: str, seen: Received) -> None:
    parts = urlsplit(upstream)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    try:
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in ("host", "content-length")}
        connection.request(seen.method, path, body=seen.body.encode() or None, headers=headers)
        answer = connection.getresponse()
        reply(handler, answer.status, answer.read(), {"Content-Type": answer.getheader("Content-Type") or ""})
    finally:
        connection.close()


@dataclass
class Gateway:
    """OpenBao under /team-a/, the rest of the host someone else's; resolves escapes and dot segments first."""

    upstream: str
    escaped: list[Received] = field(default_factory=list)

    def __call__(self, server: LoopbackServer, handler: BaseHTTPRequestHandler, seen: Received) -> None:
        path, _, query = handler.path.partition("?")
        resolved = posixpath.normpath(unquote(unquote(path)))
        if resolved.startswith("/team-a/"):
            forward(self.upstream, handler, resolved[len("/team-a"):] + (f"?{query}" if query else ""), seen)
            return
        self.escaped.append(Received(seen.method, resolved, seen.vault_token, seen.body))
        not_vault(server, handler, seen)


@dataclass
class Servers:
    outsider: LoopbackServer  # not allowed: a hostile SPC's own server
    sink: LoopbackServer  # allowed, but no mount here should ever send it anything
    redirector: LoopbackServer  # allowed
    hop: LoopbackServer  # allowed: a second redirect
    tls_redirector: LoopbackServer  # allowed, https
    gateway: LoopbackServer  # allowed under /team-a only
    gateway_rule: Gateway

    def all(self) -> list[LoopbackServer]:
        return [self.outsider, self.sink, self.redirector, self.hop, self.tls_redirector, self.gateway]


@pytest.fixture(scope="module")
def servers(cluster: Cluster) -> Iterator[Servers]:
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cluster.bao.tls.server_cert, cluster.bao.tls.server_key)
    rule = Gateway(cluster.bao.address)
    made = Servers(LoopbackServer(not_vault), LoopbackServer(not_vault), LoopbackServer(Redirect()),
                   LoopbackServer(Redirect()), LoopbackServer(Redirect(), tls=tls), LoopbackServer(rule), rule)
    yield made
    for server in made.all():
        server.stop()


@pytest.fixture(autouse=True)
def fresh_records(request: pytest.FixtureRequest) -> None:
    if "servers" in request.fixturenames:
        made: Servers = request.getfixturevalue("servers")
        for server in made.all():
            server.received.clear()
        made.gateway_rule.escaped.clear()


@pytest.fixture(scope="module")
def files_dir(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(--allowed-files-dir, a directory outside it). Inside: the test CA; a CA directory laid out like a
    mounted ConfigMap (links that stay inside); CA directories with a link leading outside, to a real CA
    and to a file holding the marker."""
    base = tmp_path_factory.mktemp("routing-files")
    allowed, outside = base / "allowed", base / "outside"
    allowed.mkdir()
    outside.mkdir()
    shutil.copy(cluster.bao.tls.ca, allowed / "ca.pem")
    shutil.copy(cluster.bao.tls.ca, outside / "ca.pem")
    (outside / "shadow").write_text(f"root:{CONTENT_MARKER}:19000:0:99999:7:::\n")
    configmap = allowed / "configmap"
    (configmap / "..2026_01_01").mkdir(parents=True)
    shutil.copy(cluster.bao.tls.ca, configmap / "..2026_01_01" / "ca.pem")
    (configmap / "..data").symlink_to("..2026_01_01")
    (configmap / "ca.pem").symlink_to("..data/ca.pem")
    for name, target in (("cas-out-ca", outside / "ca.pem"), ("cas-out-shadow", outside / "shadow")):
        (allowed / name).mkdir()
        (allowed / name / "a.pem").symlink_to(target)
    (allowed / "cert-out.pem").symlink_to(outside / "ca.pem")
    return allowed, outside


def allowed_addresses(cluster: Cluster, made: Servers) -> str:
    return ",".join([cluster.bao.address, cluster.bao.tls_address, made.sink.address, made.redirector.address,
                     made.hop.address, made.tls_redirector.address, made.gateway.address + "/team-a"])


@pytest.fixture(scope="module")
def daemon(cluster: Cluster, servers: Servers, files_dir: tuple[Path, Path],
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    directory = tmp_path_factory.mktemp("routing-daemon")
    flags = ["--vault-addr", cluster.bao.address, "--allowed-vault-addresses", allowed_addresses(cluster, servers),
             "--allowed-files-dir", str(files_dir[0])]
    with start_daemon(directory / "providers", ["vault"], flags, env=daemon_env(cluster, directory)) as running:
        yield running


def mount(daemon: Daemon, cluster: Cluster, objects: str = OBJECTS, **parameters: str) -> Any:
    return vault_mount(daemon, cluster, new_pod(), objects, timeout=20, roleName="kv-role", **parameters)


def tls_parameters(address: str) -> dict[str, str]:
    """What an SPC sets to reach an https address of the test CA's `vault.internal` certificate."""
    return {"vaultAddress": address, "vaultCACertPath": "ca.pem", "vaultTLSServerName": TLS_SERVER_NAME}


def test_legitimate_addresses_still_mount(daemon: Daemon, cluster: Cluster, servers: Servers) -> None:
    assert mount(daemon, cluster).files == EXPECTED  # the operator's --vault-addr
    assert mount(daemon, cluster, vaultAddress=cluster.bao.address + "/").files == EXPECTED
    # A Vault behind a gateway at an allowed path prefix.
    assert mount(daemon, cluster, vaultAddress=servers.gateway.address + "/team-a").files == EXPECTED
    assert servers.gateway_rule.escaped == []


# ------------------------------------------------------------------------ 1. the address checked is dialled
@pytest.mark.parametrize("address", [
    "http://127.0.0.1:{outsider}\\@127.0.0.1:{bao}",  # urlsplit reads host .1:bao; urllib3 dials the outsider
    "http://127.0.0.1:{outsider}\\\\@127.0.0.1:{bao}",
    "http://127.0.0.1:{outsider}\\@127.0.0.1:{bao}/",
    "http://x:y@127.0.0.1:{bao}",
    "http://127.0.0.1:{bao}\t/x",  # urlsplit drops the tab
    "http://127.0.0.1:{bao}/\n/x",
    "http://127.0.0.1:{bao}?x=1",
    "http://127.0.0.1:{bao}#x",
])
@pytest.mark.parametrize("source", ["SecretProviderClass", "pod volumeAttributes"])
def test_an_address_parsers_read_differently_is_refused(daemon: Daemon, cluster: Cluster, servers: Servers,
                                                        address: str, source: str) -> None:
    bao_port = urlsplit(cluster.bao.address).port
    address = address.format(outsider=servers.outsider.port, bao=bao_port)
    pod = new_pod()
    token = cluster.pod_token(pod.namespace, pod.service_account, pod.name, pod.uid)
    parameters = {"roleName": "kv-role"} | ({"vaultAddress": address} if source == "SecretProviderClass" else {})
    attributes = {"vaultAddress": address} if source == "pod volumeAttributes" else {}
    request = build_mount_request(vault_spc(OBJECTS, **parameters), pod, tokens={"vault": token},
                                  volume_attributes=attributes)
    with pytest.raises(grpc.RpcError) as caught:
        call_mount(daemon.socket_path("vault"), request, timeout=10)
    details = caught.value.details() or ""
    assert caught.value.code() is INVALID, details
    assert "vaultAddress" in details and "is not a Vault URL" in details
    assert "x:y" not in details, "credentials in an address are not echoed"
    assert servers.outsider.received == [], "the pod's JWT went to a host nobody allowed"


# ------------------------------------------------------------------------------------------- 2. redirects
def test_a_redirect_to_an_address_not_allowed_is_refused_and_gets_nothing(daemon: Daemon, cluster: Cluster,
                                                                          servers: Servers) -> None:
    servers.redirector.answer = Redirect(servers.outsider.address)
    failed = mount(daemon, cluster, vaultAddress=servers.redirector.address)
    assert failed.code is DENIED, failed.details
    assert f"Vault redirected the request to '{servers.outsider.address}/v1/auth/kubernetes/login'" in failed.details
    assert "--allowed-vault-addresses" in failed.details and "logging in with role 'kv-role'" in failed.details
    assert servers.outsider.received == []
    assert len(servers.redirector.received) == 1, "refused at the first redirect, not retried"


def test_one_redirect_to_an_allowed_vault_is_followed(daemon: Daemon, cluster: Cluster, servers: Servers) -> None:
    # An HA standby answers 307 with the active node's address: login (a POST) and read both arrive.
    servers.redirector.answer = Redirect(cluster.bao.address)
    assert mount(daemon, cluster, vaultAddress=servers.redirector.address).files == EXPECTED
    assert [r.method for r in servers.redirector.received] == ["POST", "GET"]


def test_a_second_redirect_is_not_followed(daemon: Daemon, cluster: Cluster, servers: Servers) -> None:
    servers.redirector.answer = Redirect(servers.hop.address)
    servers.hop.answer = Redirect(servers.sink.address)
    failed = mount(daemon, cluster, vaultAddress=servers.redirector.address)
    assert failed.code is grpc.StatusCode.UNAVAILABLE, failed.details
    assert f"redirected the request to '{servers.sink.address}/v1/auth/kubernetes/login'" in failed.details
    assert "at most 1 redirect" in failed.details
    assert servers.sink.received == []


def test_a_redirect_from_https_to_http_is_refused(daemon: Daemon, cluster: Cluster, servers: Servers) -> None:
    servers.tls_redirector.answer = Redirect(servers.sink.address)  # allowed, but plain http
    failed = mount(daemon, cluster, **tls_parameters(servers.tls_redirector.address))
    assert failed.code is DENIED, failed.details
    assert "from https to plain http" in failed.details and servers.sink.address in failed.details
    assert servers.sink.received == []
    assert len(servers.tls_redirector.received) == 1


def test_a_redirect_out_of_the_allowed_path_is_refused(daemon: Daemon, cluster: Cluster, servers: Servers) -> None:
    servers.redirector.answer = Redirect(location=servers.gateway.address + "/team-b/v1/auth/kubernetes/login")
    failed = mount(daemon, cluster, vaultAddress=servers.redirector.address)
    assert failed.code is DENIED, failed.details
    assert servers.gateway.received == []


@pytest.mark.parametrize(("location", "reason"), [
    ("http://127.0.0.1:{outsider}\\@127.0.0.1:{bao}/v1/auth/kubernetes/login", "backslash"),
    ("http://user:s3cret-pw@127.0.0.1:{bao}/v1/auth/kubernetes/login", "user information"),
])
def test_a_redirect_to_a_url_that_is_not_plain_is_refused(daemon: Daemon, cluster: Cluster, servers: Servers,
                                                          location: str, reason: str) -> None:
    bao_port = urlsplit(cluster.bao.address).port
    servers.redirector.answer = Redirect(location=location.format(outsider=servers.outsider.port, bao=bao_port))
    failed = mount(daemon, cluster, vaultAddress=servers.redirector.address)
    assert failed.code is DENIED, failed.details
    assert reason in failed.details and "s3cret-pw" not in failed.details
    assert servers.outsider.received == []


def test_a_303_is_not_followed(daemon: Daemon, cluster: Cluster, servers: Servers) -> None:
    servers.redirector.answer = Redirect(cluster.bao.address, status=303)
    failed = mount(daemon, cluster, vaultAddress=servers.redirector.address)
    assert failed.code is grpc.StatusCode.UNAVAILABLE, failed.details
    assert "HTTP 303 asks for a different request" in failed.details


# ----------------------------------------------------------------------------- 3. no escaping a path prefix
@pytest.mark.parametrize(("parameters", "named"), [
    ({"vaultAddress": "{gateway}/team-a/../team-b"}, "vaultAddress"),
    ({"vaultAddress": "{gateway}/team-a/%2e%2e/team-b"}, "vaultAddress"),
    ({"vaultAddress": "{gateway}/team-a/%2E%2E/team-b"}, "vaultAddress"),
    ({"vaultAddress": "{gateway}/team-a/.%2E/team-b"}, "vaultAddress"),
    ({"vaultAddress": "{gateway}/team-a", "objects":
      "- {objectName: s, secretPath: ../../team-b/v1/secret/data/kv1, secretKey: bar1}"}, "secretPath"),
    ({"vaultAddress": "{gateway}/team-a", "objects":
      "- {objectName: s, secretPath: secret/%2e%2e/%2e%2e/%2e%2e/team-b/x, secretKey: bar1}"}, "secretPath"),
    ({"vaultAddress": "{gateway}/team-a", "objects":
      "- {objectName: s, secretPath: secret/%2E%2e/%2e%2E/%2e./team-b/x, secretKey: bar1}"}, "secretPath"),
    ({"vaultAddress": "{gateway}/team-a", "vaultAuthMountPath": "./../../../team-b/x"}, "vaultAuthMountPath"),
    ({"vaultAddress": "{gateway}/team-a", "vaultKubernetesMountPath": "kubernetes/./."}, "vaultKubernetesMountPath"),
])
def test_dot_segments_cannot_leave_an_allowed_path(daemon: Daemon, cluster: Cluster, servers: Servers,
                                                  parameters: dict[str, str], named: str) -> None:
    objects = parameters.pop("objects", OBJECTS)
    parameters = {k: v.format(gateway=servers.gateway.address) for k, v in parameters.items()}
    failed = vault_mount(daemon, cluster, new_pod(), objects, timeout=20, roleName="kv-role", **parameters)
    assert failed.code is INVALID, failed.details
    assert named in failed.details and "segment" in failed.details
    if named == "secretPath":
        assert "object 's'" in failed.details
    assert servers.gateway_rule.escaped == [], "a request reached /team-b"
    assert servers.gateway.received == [], "refused before any request"


# ------------------------------------------------------------------------ 4. TLS of an allowed address
def test_skipping_tls_verification_is_refused_with_an_allowlist(daemon: Daemon, cluster: Cluster,
                                                                servers: Servers) -> None:
    failed = mount(daemon, cluster, vaultAddress=servers.tls_redirector.address, vaultSkipTLSVerify="true")
    assert failed.code is INVALID, failed.details
    assert "vaultSkipTLSVerify" in failed.details and "--allow-vault-skip-tls-verify" in failed.details
    assert servers.tls_redirector.received == []
    # Verification on, or said in words, still works.
    servers.tls_redirector.answer = Redirect(cluster.bao.tls_address)
    tls = tls_parameters(servers.tls_redirector.address)
    failed = mount(daemon, cluster, **tls, vaultSkipTLSVerify="false")
    assert failed.code is grpc.StatusCode.UNAVAILABLE and "client certificate" in failed.details, failed.details


def test_the_operator_can_allow_skipping_tls_verification(cluster: Cluster, servers: Servers,
                                                          tmp_path: Path) -> None:
    servers.tls_redirector.answer = not_vault
    flags = ["--vault-addr", cluster.bao.address, "--allowed-vault-addresses", allowed_addresses(cluster, servers),
             "--allow-vault-skip-tls-verify"]
    with start_daemon(tmp_path / "providers", ["vault"], flags, env=daemon_env(cluster, tmp_path)) as running:
        failed = mount(running, cluster, vaultAddress=servers.tls_redirector.address, vaultSkipTLSVerify="true")
    # The untrusted certificate was accepted: the server's own answer came back.
    assert failed.code is grpc.StatusCode.UNAUTHENTICATED and "this is not Vault" in failed.details, failed.details


# ---------------------------------------------------------------------- 5. files resolved one by one
@pytest.mark.parametrize(("parameters", "named"), [
    ({"vaultCADirectory": "cas-out-ca"}, "vaultCADirectory"),  # a link to a real CA outside
    ({"vaultCADirectory": "cas-out-shadow"}, "vaultCADirectory"),  # a link to /etc/shadow, say
    ({"vaultCACertPath": "cert-out.pem"}, "vaultCACertPath"),
])
def test_links_out_of_the_allowed_directory_are_refused_file_by_file(
    daemon: Daemon, cluster: Cluster, files_dir: tuple[Path, Path], parameters: dict[str, str], named: str,
) -> None:
    failed = mount(daemon, cluster, vaultAddress=cluster.bao.tls_address, vaultTLSServerName=TLS_SERVER_NAME,
                   **parameters)
    assert failed.code is DENIED, failed.details
    assert named in failed.details and "--allowed-files-dir" in failed.details
    assert CONTENT_MARKER not in failed.details and CONTENT_MARKER not in daemon.logs()
    assert str(files_dir[1]) not in failed.details, "where the link leads is not shown"


def test_a_ca_directory_of_links_that_stay_inside_works(daemon: Daemon, cluster: Cluster) -> None:
    # A mounted ConfigMap: ca.pem -> ..data/ca.pem, ..data -> ..2026_01_01. The handshake gets as far as
    # OpenBao's demand for a client certificate, so the CA was trusted.
    for parameters in ({"vaultCADirectory": "configmap"}, {"vaultCACertPath": "configmap/ca.pem"}):
        failed = mount(daemon, cluster, vaultAddress=cluster.bao.tls_address, vaultTLSServerName=TLS_SERVER_NAME,
                       **parameters)
        assert failed.code is grpc.StatusCode.UNAVAILABLE, failed.details
        assert "client certificate" in failed.details and "certificate verify failed" not in failed.details

