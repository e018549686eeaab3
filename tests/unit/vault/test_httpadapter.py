"""The hvac adapter over http.client (httpadapter.py) against real servers on 127.0.0.1 and a unix socket:
what goes on the wire (the same as hvac's RawAdapter over requests), connection reuse and its bounds,
TLS variants, timeouts, proxies from the environment, no automatic redirects, and errors mapped as before."""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import select
import socket
import socketserver
import ssl
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import hvac.adapters
import hvac.exceptions
import pytest
import requests

from provider.backends.vault import httpadapter, transport
from provider.backends.vault.client import call
from provider.backends.vault.config import Connection, TLSSettings
from provider.backends.vault.httpadapter import (
    ConnectFailed,
    ConnectionBroken,
    ConnectionPool,
    Endpoint,
    PooledAdapter,
    ReadTimeout,
    TLSFailed,
)
from provider.errors import ErrorKind, ProviderError
from tests.support.http import relay, reply
from tests.support.openbao import TLS_SERVER_NAME, TLSFiles, make_tls_files

SECRET = {"data": {"data": {"value": "v-1"}}}


@dataclass
class Seen:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    peer: Any


@dataclass
class Behaviour:
    """What the test server does: per path prefix, a function of the handler that writes the answer."""

    seen: list[Seen] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    location: str = "http://127.0.0.1:9/v1/secret/data/elsewhere"  # where /v1/redirect sends the client
    busy: int = 0
    most_busy: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    behaviour: Behaviour

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        behaviour = self.server.behaviour  # type: ignore[attr-defined]
        with behaviour.lock:
            behaviour.seen.append(Seen(self.command, self.path, dict(self.headers.items()), body, self.client_address))
            behaviour.busy += 1
            behaviour.most_busy = max(behaviour.most_busy, behaviour.busy)
        try:
            self._route(behaviour)
        finally:
            with behaviour.lock:
                behaviour.busy -= 1

    def _route(self, behaviour: Behaviour) -> None:
        path = self.path
        if path.startswith("/v1/redirect"):
            reply(self, 307, b"", {"Location": behaviour.location})
        elif path.startswith("/v1/wait"):
            behaviour.release.wait(10)
            reply(self, 200, json.dumps(SECRET).encode())
        elif path.startswith("/v1/hang-up"):
            self.close_connection = True  # no answer at all
        elif path.startswith("/v1/close"):
            reply(self, 200, json.dumps(SECRET).encode(), {"Connection": "close"})
            self.close_connection = True
        elif path.startswith("/v1/quietly-close"):
            reply(self, 200, json.dumps(SECRET).encode())
            self.close_connection = True  # keep-alive announced, closed right after: stale for the client
        elif path.startswith("/v1/chunked"):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            data = json.dumps(SECRET).encode()
            for piece in (data[:5], data[5:]):
                self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        elif path.startswith("/v1/missing"):
            reply(self, 404, b'{"errors":[]}', {"Content-Type": "application/json"})
        else:
            reply(self, 200, json.dumps(SECRET).encode(), {"Content-Type": "application/json"})

    do_GET = do_POST = do_PUT = do_LIST = do_HEAD = do_PATCH = _answer


class TCPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, context: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.behaviour = Behaviour()
        self.context = context

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, peer = super().get_request()
        if self.context is not None:
            sock.settimeout(5)
            sock = self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, peer

    def finish_request(self, request: Any, client_address: Any) -> None:
        with contextlib.suppress(OSError):  # a handshake the client gave up on
            if isinstance(request, ssl.SSLSocket):
                request.do_handshake()
            super().finish_request(request, client_address)

    @property
    def address(self) -> str:
        return f"{'https' if self.context else 'http'}://127.0.0.1:{self.server_address[1]}"


class UnixServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, path: Path) -> None:
        super().__init__(str(path), Handler)
        self.behaviour = Behaviour()


@contextlib.contextmanager
def serving(server: socketserver.BaseServer) -> Iterator[Any]:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.behaviour.release.set()  # type: ignore[attr-defined]
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def server() -> Iterator[TCPServer]:
    with serving(TCPServer()) as running:
        yield running


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


def server_context(files: TLSFiles, require_client: bool) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(files.server_cert, files.server_key)
    if require_client:
        context.load_verify_locations(files.ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def adapter_for(address: str, namespace: str = "", tls: TLSSettings | None = None) -> PooledAdapter:
    return transport.build_session(Connection(address, namespace, tls or TLSSettings()))


# ----------------------------------------------------------------------------------- on the wire


@pytest.mark.parametrize(
    ("base", "url", "params"),
    [
        ("", "/v1/secret/data/app", None),
        ("", "/v1/secret/data/app", [("version", "2"), ("b", "x y&z")]),
        ("", "v1//secret//data/app/", None),  # double slashes and a trailing slash, as RawAdapter joins them
        ("/team-a", "/v1/secret/data/app", None),  # an address with a path prefix
        ("", "/v1/secret/data/with space/ü", None),  # quoted as requests quotes it
        ("", "/v1/secret/data/a%2Fb", [("k", "%")]),  # an escape in the path is kept
        ("", "/v1/pki/issue/web", [("common_name", "a.example")]),
    ],
)
def test_requests_go_out_as_hvacs_raw_adapter_sends_them(server: TCPServer, base: str, url: str,
                                                        params: list[tuple[str, str]] | None) -> None:
    ours = adapter_for(server.address + base, namespace="team-a")
    ours.token = "s.token"
    session = requests.Session()
    theirs = hvac.adapters.RawAdapter(base_uri=server.address + base, token="s.token", namespace="team-a",
                                      session=session)
    ours.request("GET", url, params=params, raise_exception=False)
    theirs.request("GET", url, params=params, raise_exception=False)
    session.close()
    sent, expected = server.behaviour.seen
    assert (sent.method, sent.target) == (expected.method, expected.target)
    for name in ("X-Vault-Request", "X-Vault-Token", "X-Vault-Namespace", "Host"):
        assert sent.headers.get(name) == expected.headers.get(name), name


def test_body_method_and_answer(server: TCPServer) -> None:
    adapter = adapter_for(server.address)
    reply = adapter.request("PUT", "/v1/database/creds/x", data=b'{"a":1}',
                            headers={"Content-Type": "application/json"}, raise_exception=False)
    assert reply.status_code == 200 and reply.ok and reply.json() == SECRET
    assert reply.headers.get("content-type") == "application/json"
    seen = server.behaviour.seen[-1]
    assert (seen.method, seen.body, seen.headers["Content-Type"]) == ("PUT", b'{"a":1}', "application/json")
    assert "X-Vault-Token" not in seen.headers and "X-Vault-Namespace" not in seen.headers
    assert adapter.request("LIST", "/v1/secret/metadata", raise_exception=False).status_code == 200
    assert server.behaviour.seen[-1].method == "LIST"


def test_errors_raise_as_in_hvac_when_asked(server: TCPServer) -> None:
    adapter = adapter_for(server.address)
    with pytest.raises(hvac.exceptions.InvalidPath):
        adapter.request("GET", "/v1/missing")
    assert adapter.request("GET", "/v1/missing", raise_exception=False).status_code == 404


def test_a_chunked_answer_is_read_whole_and_the_connection_kept(server: TCPServer) -> None:
    adapter = adapter_for(server.address)
    assert adapter.request("GET", "/v1/chunked", raise_exception=False).json() == SECRET
    assert adapter.request("GET", "/v1/ok", raise_exception=False).json() == SECRET
    assert adapter.pool.opened == 1


class _Bytes:
    """A socket that has received `raw` (what HTTPResponse reads through makefile)."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw

    def makefile(self, mode: str) -> io.BytesIO:
        return io.BytesIO(self.raw)


def _answered(response_class: type[http.client.HTTPResponse], raw: bytes, method: str) -> Any:
    response = response_class(_Bytes(raw), method=method)  # type: ignore[arg-type]
    try:
        response.begin()
    except http.client.HTTPException as exc:
        return type(exc).__name__, str(exc)
    return (response.status, response.reason, response.version, response.getheaders(), response.chunked,
            response.length, response.will_close, response.getheader("content-type"), response.read())


@pytest.mark.parametrize("head, body, method", [
    (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n", b"{}", "GET"),
    (b"HTTP/1.1 200 OK\r\ncontent-type:application/json \r\ncontent-length:  2\r\n", b"{}", "GET"),
    (b"HTTP/1.1 200 OK\nX-A: 1\nX-A: 2\nX-Empty:\nContent-Length: 2\n", b"{}", "GET"),
    (b"HTTP/1.1 200 OK\r\nX-Folded: one\r\n  two\r\nContent-Length: 2\r\n", b"{}", "GET"),
    (b"HTTP/1.1 200 OK\r\nX-Latin: caf\xe9\r\nX-Cr: a\rb\r\nContent-Length: 2\r\n", b"{}", "GET"),
    (b"HTTP/1.1 200 OK\r\nno colon here\r\nContent-Length: 2\r\n", b"{}", "GET"),
    (b"HTTP/1.1 200 OK\r\n: no name\r\nBad Name: x\r\nContent-Length: 2\r\n", b"{}", "GET"),
    (b"HTTP/1.1 100 Continue\r\nX-Skip: 1\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n", b"{}", "PUT"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\n", b"2\r\n{}\r\n0\r\n\r\n", "GET"),
    (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n", b"{}", "GET"),
    (b"HTTP/1.0 200 OK\r\nKeep-Alive: timeout=5\r\nContent-Length: 2\r\n", b"{}", "GET"),
    (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n", b"{}", "GET"),
    (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n", b"until the end", "GET"),
    (b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n", b"", "DELETE"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n", b"", "HEAD"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n", b"{}", "GET"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: two\r\n", b"{}", "GET"),
    (b"HTTP/1.1 200 OK\r\n" + b"X-Many: 1\r\n" * 100, b"", "GET"),
    (b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 70000 + b"\r\n", b"", "GET"),
    (b"HTTP/2 200 OK\r\nContent-Length: 2\r\n", b"{}", "GET"),
])
def test_answers_are_read_as_http_client_reads_them(head: bytes, body: bytes, method: str) -> None:
    raw = head + b"\r\n" + body
    assert _answered(httpadapter._Response, raw, method) == _answered(http.client.HTTPResponse, raw, method)


# ------------------------------------------------------------------------------------ redirects


@pytest.fixture
def target() -> Iterator[TCPServer]:
    with serving(TCPServer()) as running:
        yield running


def test_one_redirect_is_followed_with_the_same_request(server: TCPServer, target: TCPServer) -> None:
    server.behaviour.location = f"{target.address}/v1/standby/answer?x=1"
    adapter = adapter_for(server.address)
    adapter.token = "s.token"
    reply = adapter.request("POST", "/v1/redirect", data=b'{"jwt":"x"}', raise_exception=False)
    assert reply.status_code == 200 and reply.json() == SECRET
    (seen,) = target.behaviour.seen
    assert (seen.method, seen.target, seen.body) == ("POST", "/v1/standby/answer?x=1", b'{"jwt":"x"}')
    assert seen.headers["X-Vault-Token"] == "s.token" and seen.headers["Host"] == target.address.split("//")[1]


@pytest.mark.parametrize(
    ("location", "allowed", "why"),
    [
        ("{target}/v1/redirect", "", "at most 1 redirect"),  # the target redirects again
        ("{target}/v1/ok", "{server}", "--allowed-vault-addresses"),  # not an allowed address
        ("https://127.0.0.1:9/v1/ok", "", None),  # to https: allowed, and tried (nothing listens there)
    ],
)
def test_redirects_the_policy_refuses_are_errors_naming_the_target(server: TCPServer, target: TCPServer,
                                                                   location: str, allowed: str,
                                                                   why: str | None) -> None:
    from provider.backends.vault.policy import VaultPolicy
    from provider.backends.vault.redirects import RedirectRefused

    server.behaviour.location = location.format(target=target.address)
    target.behaviour.location = f"{target.address}/v1/ok"
    policy = VaultPolicy(allowed_addresses=(allowed.format(server=server.address),) if allowed else ())
    adapter = transport.build_session(Connection(server.address), policy)
    if why is None:
        with pytest.raises(ConnectFailed):
            adapter.request("GET", "/v1/redirect", raise_exception=False)
        return
    with pytest.raises(RedirectRefused) as caught:
        adapter.request("GET", "/v1/redirect", raise_exception=False)
    assert why in caught.value.message and caught.value.target.startswith(target.address)
    assert len(target.behaviour.seen) == (1 if why.startswith("at most") else 0)


def test_a_redirect_from_https_to_http_is_refused(tls_server: TCPServer, tls_files: TLSFiles,
                                                 target: TCPServer) -> None:
    from provider.backends.vault.redirects import RedirectRefused

    tls_server.behaviour.location = f"{target.address}/v1/ok"
    adapter = adapter_for(tls_server.address, tls=TLSSettings(
        ca_cert=str(tls_files.ca), server_name=TLS_SERVER_NAME, client_cert=str(tls_files.client_cert),
        client_key=str(tls_files.client_key)))
    with pytest.raises(RedirectRefused, match="from https to plain http"):
        adapter.request("GET", "/v1/redirect", raise_exception=False)
    assert target.behaviour.seen == []


# ------------------------------------------------------------------------------ connection reuse


def test_connections_are_kept_and_reused(server: TCPServer) -> None:
    adapter = adapter_for(server.address)
    for _ in range(5):
        assert adapter.request("GET", "/v1/ok", raise_exception=False).status_code == 200
    assert adapter.pool.opened == 1
    assert len({s.peer for s in server.behaviour.seen}) == 1


@pytest.mark.parametrize("path", ["/v1/close", "/v1/quietly-close"])
def test_a_connection_the_server_closed_is_not_reused(server: TCPServer, path: str) -> None:
    adapter = adapter_for(server.address)
    assert adapter.request("GET", path, raise_exception=False).status_code == 200
    _wait_closed_by_server(adapter.pool)
    assert adapter.request("GET", "/v1/ok", raise_exception=False).status_code == 200
    assert adapter.pool.opened == 2


def _wait_closed_by_server(pool: ConnectionPool) -> None:
    """Until the kept connection (if any) reads as closed: the server closes it just after answering."""
    for connection, _ in list(pool._idle):
        assert connection.sock is not None
        select.select([connection.sock], [], [], 5)


def test_a_kept_connection_that_fails_before_any_answer_is_replaced_once(server: TCPServer) -> None:
    # The server closed the kept connection at the moment the request went out: sent again on a new one.
    adapter = adapter_for(server.address)
    assert adapter.request("GET", "/v1/ok", raise_exception=False).status_code == 200
    (connection, since), = adapter.pool._idle
    assert connection.sock is not None
    connection.sock.shutdown(socket.SHUT_WR)  # what the next request will meet: a connection that is going away
    adapter.pool._idle[0] = (connection, since)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("provider.backends.vault.httpadapter._dropped", lambda connection: False)
        assert adapter.request("GET", "/v1/ok", raise_exception=False).status_code == 200
    assert adapter.pool.opened == 2


def test_a_new_connection_that_closes_without_answer_is_an_error(server: TCPServer) -> None:
    adapter = adapter_for(server.address)
    with pytest.raises(ConnectionBroken) as caught:
        adapter.request("GET", "/v1/hang-up", raise_exception=False)
    assert isinstance(caught.value.reason, ConnectionResetError)  # RemoteDisconnected, under it


def test_connections_per_pool_are_bounded(server: TCPServer) -> None:
    pool = ConnectionPool(Endpoint("127.0.0.1", server.server_address[1]), max_connections=2)
    adapter = PooledAdapter(server.address, pool)

    def waiting(_: int) -> int:
        return int(adapter.request("GET", "/v1/wait", raise_exception=False).status_code)

    with ThreadPoolExecutor(6) as threads:
        answers = threads.map(waiting, range(6))
        _until(lambda: server.behaviour.busy == 2)
        with pytest.raises(ReadTimeout, match="no free connection"):
            adapter.request("GET", "/v1/ok", raise_exception=False, timeout=(1, 0.2))
        server.behaviour.release.set()
        assert list(answers) == [200] * 6
    assert server.behaviour.most_busy == 2 and pool.opened == 2 and pool.idle() == 2


def test_closing_a_pool_closes_its_idle_connections_and_keeps_no_more(server: TCPServer) -> None:
    adapter = adapter_for(server.address)
    adapter.request("GET", "/v1/ok", raise_exception=False)
    assert adapter.pool.idle() == 1
    adapter.close()
    assert adapter.pool.idle() == 0
    assert adapter.request("GET", "/v1/ok", raise_exception=False).status_code == 200  # in flight at close
    assert adapter.pool.idle() == 0


def _until(condition: Callable[[], bool]) -> None:
    event = threading.Event()
    for _ in range(500):
        if condition():
            return
        event.wait(0.01)
    raise AssertionError("the condition never held")


# ---------------------------------------------------------------------------------------- timeouts


def test_a_server_that_never_answers_is_a_read_timeout(server: TCPServer) -> None:
    adapter = adapter_for(server.address)
    with pytest.raises(ReadTimeout):
        adapter.request("GET", "/v1/wait", raise_exception=False, timeout=(1, 0.2))
    server.behaviour.release.set()
    assert adapter.request("GET", "/v1/ok", raise_exception=False).status_code == 200


def test_nothing_listening_is_a_connect_failure() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ConnectFailed) as caught:
        adapter_for(f"http://127.0.0.1:{port}").request("GET", "/v1/ok", raise_exception=False)
    assert isinstance(caught.value.reason, ConnectionRefusedError)


# --------------------------------------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def tls_server(tls_files: TLSFiles) -> Iterator[TCPServer]:
    with serving(TCPServer(server_context(tls_files, require_client=True))) as running:
        yield running


@pytest.mark.parametrize(
    ("settings", "failure"),
    [
        ({"ca_cert": "ca", "server_name": TLS_SERVER_NAME, "client": True}, None),
        ({"ca_directory": True, "server_name": TLS_SERVER_NAME, "client": True}, None),
        ({"skip_verify": True, "client": True}, None),
        ({"ca_cert": "ca", "client": True}, "IP address mismatch"),  # the certificate names vault.internal only
        ({"ca_cert": "other_ca", "server_name": TLS_SERVER_NAME, "client": True}, "certificate verify failed"),
        ({"ca_cert": "ca", "server_name": TLS_SERVER_NAME}, ""),  # the server requires a client certificate
    ],
)
def test_tls_settings(tls_server: TCPServer, tls_files: TLSFiles, tmp_path: Path, settings: dict[str, Any],
                      failure: str | None) -> None:
    directory = tmp_path / "cas"
    directory.mkdir()
    (directory / "ca.pem").write_bytes(tls_files.ca.read_bytes())
    tls = TLSSettings(
        ca_cert=str(getattr(tls_files, settings["ca_cert"])) if "ca_cert" in settings else "",
        ca_directory=str(directory) if settings.get("ca_directory") else "",
        server_name=settings.get("server_name", ""), skip_verify=settings.get("skip_verify", False),
        client_cert=str(tls_files.client_cert) if settings.get("client") else "",
        client_key=str(tls_files.client_key) if settings.get("client") else "")
    adapter = adapter_for(tls_server.address, tls=tls)
    if failure is None:
        assert adapter.request("GET", "/v1/ok", raise_exception=False).json() == SECRET
        if settings.get("server_name"):
            assert tls_server.behaviour.seen[-1].headers["Host"] == tls_server.address.split("//")[1]
        return
    with pytest.raises(TLSFailed) as caught:
        adapter.request("GET", "/v1/ok", raise_exception=False)
    assert isinstance(caught.value.reason, ssl.SSLError)
    assert failure in str(caught.value)


# --------------------------------------------------------------------------------------- unix socket


def test_a_unix_socket_address(tmp_path: Path) -> None:
    with serving(UnixServer(tmp_path / "agent.sock")) as unix:
        adapter = adapter_for(f"unix://{tmp_path / 'agent.sock'}", namespace="ns")
        for _ in range(3):
            assert adapter.request("GET", "/v1/ok", raise_exception=False).json() == SECRET
        seen = unix.behaviour.seen
        assert [s.target for s in seen] == ["/v1/ok"] * 3
        assert seen[0].headers["Host"] == "localhost" and seen[0].headers["X-Vault-Namespace"] == "ns"
        assert adapter.pool.opened == 1


def test_a_missing_unix_socket_is_a_connect_failure(tmp_path: Path) -> None:
    with pytest.raises(ConnectFailed) as caught:
        adapter_for(f"unix://{tmp_path / 'none.sock'}").request("GET", "/v1/ok", raise_exception=False)
    assert isinstance(caught.value.reason, FileNotFoundError)


# ------------------------------------------------------------------------------------------ proxies


class ProxyHandler(BaseHTTPRequestHandler):
    """A forward proxy: CONNECT tunnels, and plain requests in absolute form forwarded."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_CONNECT(self) -> None:
        self.server.seen.append(("CONNECT", self.path, self.headers.get("Proxy-Authorization")))  # type: ignore[attr-defined]
        host, port = self.path.rsplit(":", 1)
        upstream = socket.create_connection((host, int(port)), timeout=5)
        self.send_response(200, "Connection established")
        self.end_headers()
        self.close_connection = True
        with upstream:
            relay(self.connection, upstream, idle_seconds=5)

    def do_GET(self) -> None:
        self.server.seen.append(("GET", self.path, self.headers.get("Proxy-Authorization")))  # type: ignore[attr-defined]
        target = urlsplit(self.path)
        upstream = http.client.HTTPConnection(target.hostname or "", target.port, timeout=5)
        try:
            upstream.request("GET", target.path, headers={k: v for k, v in self.headers.items()
                                                          if k.lower().startswith("x-vault")})
            answer = upstream.getresponse()
            content = answer.read()
        finally:
            upstream.close()
        self.send_response(answer.status)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)


@pytest.fixture
def proxy() -> Iterator[Any]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), ProxyHandler)
    server.daemon_threads = True
    server.seen = []  # type: ignore[attr-defined]
    server.behaviour = Behaviour()  # type: ignore[attr-defined]
    with serving(server) as running:
        yield running


def test_plain_http_through_the_environments_proxy(server: TCPServer, proxy: Any,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://user:p%40ss@127.0.0.1:{proxy.server_address[1]}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    adapter = adapter_for(server.address)
    adapter.token = "s.token"
    assert adapter.request("GET", "/v1/ok", raise_exception=False).json() == SECRET
    assert proxy.seen == [("GET", f"{server.address}/v1/ok", "Basic dXNlcjpwQHNz")]
    assert server.behaviour.seen[-1].headers["X-Vault-Token"] == "s.token"


def test_tls_through_the_environments_proxy_is_tunnelled(tls_server: TCPServer, tls_files: TLSFiles, proxy: Any,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.server_address[1]}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    tls = TLSSettings(ca_cert=str(tls_files.ca), server_name=TLS_SERVER_NAME, client_cert=str(tls_files.client_cert),
                      client_key=str(tls_files.client_key))
    adapter = adapter_for(tls_server.address, tls=tls)
    assert adapter.request("GET", "/v1/ok", raise_exception=False).json() == SECRET
    assert proxy.seen == [("CONNECT", tls_server.address.split("//")[1], None)]


def test_no_proxy_is_honoured(server: TCPServer, proxy: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.server_address[1]}")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert adapter_for(server.address).request("GET", "/v1/ok", raise_exception=False).status_code == 200
    assert proxy.seen == []


# ---------------------------------------------------------------------------- errors, as before


@pytest.fixture
def refused_address() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


@pytest.mark.parametrize(
    ("where", "path", "kind", "message"),
    [
        ("refused", "/v1/ok", ErrorKind.UNAVAILABLE,
         "cannot connect to Vault while reading it (Connection refused); check vaultAddress and that Vault is running"),
        ("server", "/v1/hang-up", ErrorKind.UNAVAILABLE,
         "cannot connect to Vault while reading it (RemoteDisconnected); check vaultAddress"),
        ("server", "/v1/wait", ErrorKind.DEADLINE_EXCEEDED,
         "Vault did not answer before the mount deadline while reading it; check that Vault is up"),
        ("tls", "/v1/ok", ErrorKind.UNAVAILABLE,
         "TLS with Vault failed while reading it (certificate verify failed: IP address mismatch"),
    ],
)
def test_failures_become_the_messages_they_were(server: TCPServer, tls_server: TCPServer, tls_files: TLSFiles,
                                                refused_address: str, where: str, path: str, kind: ErrorKind,
                                                message: str) -> None:
    import time

    if where == "tls":
        adapter = adapter_for(tls_server.address, tls=TLSSettings(ca_cert=str(tls_files.ca)))
    else:
        adapter = adapter_for(refused_address if where == "refused" else server.address)
    with pytest.raises(ProviderError) as caught:
        call(adapter, "GET", path, token="t", deadline=time.monotonic() + 1.0, operation="read", what="reading it",
             where="Vault")
    assert caught.value.kind is kind
    assert message in caught.value.message


def test_the_session_cache_keeps_one_adapter_per_setting_and_is_bounded(server: TCPServer,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transport, "MAX_SESSIONS", 2)
    closed: list[PooledAdapter] = []
    monkeypatch.setattr(transport, "_close_later", closed.append)
    cache = transport.SessionCache()
    first = cache.get(Connection(server.address))
    assert cache.get(Connection(server.address)) is first
    others = [cache.get(Connection(server.address, namespace=n)) for n in ("a", "b")]
    assert first not in others and len(set(map(id, others))) == 2
    assert closed == [first]


def test_a_vault_on_a_unix_socket_is_never_redirected(tmp_path: Path, target: TCPServer) -> None:
    from provider.backends.vault.redirects import RedirectRefused

    with serving(UnixServer(tmp_path / "agent.sock")) as unix:
        unix.behaviour.location = f"{target.address}/v1/ok"
        adapter = adapter_for(f"unix://{tmp_path / 'agent.sock'}")
        with pytest.raises(RedirectRefused, match="never redirected"):
            adapter.request("GET", "/v1/redirect", raise_exception=False)
    assert target.behaviour.seen == []
