"""An hvac adapter over the standard library's http.client, with a bounded keep-alive pool of connections.

hvac's own adapters carry each call through requests and urllib3, which cost about 1 ms of CPU per call
here against about 0.16 ms for http.client alone; a warm mount of ten objects makes ten calls, and the
node pays for every pod at every rotation poll. This adapter sends what hvac's RawAdapter sends (the
X-Vault-Request, X-Vault-Token and X-Vault-Namespace headers, the same URL joining and quoting) and
answers with a small response object that has the parts of requests.Response that callers read.

Nothing follows a redirect automatically: the adapter asks `redirects.decide` (at most one, re-checked
against the Vault policy, never to a weaker scheme) and sends the same request once more to the
target it allows, on a connection of its own; a refusal is raised as RedirectRefused naming the target.
Its transport errors say whether the request can have reached Vault, which is what decides a retry.
"""

from __future__ import annotations

import base64
import email.parser
import http.client
import json
import re
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

import hvac.adapters
import hvac.utils

from provider.backends.vault.policy import VaultPolicy
from provider.backends.vault.redirects import REDIRECT_STATUSES, decide
from provider.fanout import FairGate

# Connections open at once to one Vault address per TLS setting; a call waits for a free one.
MAX_CONNECTIONS = 32
# An idle connection older than this is closed rather than reused (Vault closes idle ones after minutes).
IDLE_SECONDS = 60.0
DEFAULT_TIMEOUT = 30.0
# A path of these characters needs no quoting; anything else is quoted the way requests quotes it.
_PLAIN_PATH = re.compile(r"^[A-Za-z0-9._~/\-]*$")
# What the server may have done with a request on a kept connection that fails before any answer: closed it
# while idle. Sent again once on a new connection, as browsers and Go's transport do.
_CLOSED_WHILE_IDLE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)
# The header block of an answer: at most this many lines of at most this many bytes (http.client's limits).
MAX_HEADER_LINES = 100
MAX_HEADER_LINE = 65536
# A header line as the email package reads it when there is nothing unusual about it: a name of printable
# characters but ':', the value after any blanks, one line ending.
_PLAIN_HEADER = re.compile(r"([!-9;-~]+):[ \t]*([^\r\n]*)\r?\n")


class TransportError(Exception):
    """No usable HTTP answer. `reason` is the ssl or OS error under it, for a short message."""

    def __init__(self, message: str, reason: BaseException | None = None) -> None:
        super().__init__(message)
        self.reason = reason


class ConnectFailed(TransportError):
    """No connection was made, so the request never reached Vault (safe to send again)."""


class ConnectTimeout(ConnectFailed):
    """The connection (TCP and the TLS handshake) was not made within the connect timeout."""


class TLSFailed(TransportError):
    """The TLS handshake or the TLS session failed: trust, server name or client certificate."""


class ReadTimeout(TransportError):
    """The request went out (or waited for a free connection) and no answer came within the read timeout."""


class ConnectionBroken(TransportError):
    """The connection failed after the request was sent: Vault may have acted on it."""


class Headers:
    """Response headers, looked up without regard to case."""

    def __init__(self, pairs: Sequence[tuple[str, str]]) -> None:
        self._pairs = list(pairs)
        self._lower: dict[str, str] = {}
        for name, value in self._pairs:
            key = name.lower()
            self._lower[key] = f"{self._lower[key]}, {value}" if key in self._lower else value

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._lower.get(name.lower(), default)

    def __getitem__(self, name: str) -> str:
        return self._lower[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._lower

    def items(self) -> list[tuple[str, str]]:
        return list(self._pairs)


@dataclass
class Reply:
    """An HTTP answer: what callers of requests.Response read (status_code, headers, content, text, json)."""

    status_code: int
    headers: Headers
    content: bytes
    url: str
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.status_code < 400

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


@dataclass(frozen=True)
class Proxy:
    """An HTTP proxy from the environment: host, port and the Proxy-Authorization value, if any."""

    host: str
    port: int
    authorization: str = ""

    @classmethod
    def from_url(cls, url: str) -> Proxy:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"only http:// proxies are supported, not {parts.scheme}://")
        authorization = ""
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            authorization = "Basic " + base64.b64encode(pair).decode()
        return cls(parts.hostname, parts.port or 80, authorization)

    def headers(self) -> dict[str, str]:
        return {"Proxy-Authorization": self.authorization} if self.authorization else {}


class _Response(http.client.HTTPResponse):
    """http.client's response, its header block parsed without the email package when every line is a plain
    `Name: value` (Vault's are): the email parser took a third of the exchange's CPU. Any other line, and
    the whole block goes to the email parser as http.client gives it, so the headers are the same either way."""

    def begin(self) -> None:
        if self.headers is not None:
            return
        while True:
            version, status, reason = self._read_status()  # type: ignore[attr-defined]  # http.client's own
            if status != http.client.CONTINUE:
                break
            _header_lines(self.fp)  # a 100 Continue's headers, not the answer's
        self.code = self.status = status
        self.reason = reason.strip()
        if version in ("HTTP/1.0", "HTTP/0.9"):
            self.version = 10
        elif version.startswith("HTTP/1."):
            self.version = 11
        else:
            raise http.client.UnknownProtocol(version)
        self.headers = self.msg = _parsed_headers(_header_lines(self.fp))
        encoding = self.headers.get("transfer-encoding")
        self.chunked = bool(encoding) and encoding.lower() == "chunked"
        self.chunk_left = None
        self.will_close = self._check_close()  # type: ignore[attr-defined]
        self.length = None
        length = self.headers.get("content-length")
        if length and not self.chunked:
            try:
                self.length = int(length)
            except ValueError:
                self.length = None
            else:
                if self.length < 0:  # nonsense, as if not given
                    self.length = None
        if status in (http.client.NO_CONTENT, http.client.NOT_MODIFIED) or 100 <= status < 200 or \
                self._method == "HEAD":  # type: ignore[attr-defined]
            self.length = 0
        if not self.will_close and not self.chunked and self.length is None:
            self.will_close = True  # the body ends when the connection does


def _header_lines(fp: Any) -> list[bytes]:
    """The lines of a header block up to and including the empty one, within http.client's limits."""
    lines: list[bytes] = []
    while True:
        line = fp.readline(MAX_HEADER_LINE + 1)
        if len(line) > MAX_HEADER_LINE:
            raise http.client.LineTooLong("header line")
        lines.append(line)
        if len(lines) > MAX_HEADER_LINES:
            raise http.client.HTTPException(f"got more than {MAX_HEADER_LINES} headers")
        if line in (b"\r\n", b"\n", b""):
            return lines


def _parsed_headers(lines: list[bytes]) -> http.client.HTTPMessage:
    """The header block as http.client.parse_headers makes it."""
    message = http.client.HTTPMessage()
    for line in lines[:-1]:
        plain = _PLAIN_HEADER.fullmatch(line.decode("iso-8859-1"))
        if plain is None:
            parsed: http.client.HTTPMessage = email.parser.Parser(_class=http.client.HTTPMessage).parsestr(
                b"".join(lines).decode("iso-8859-1"))
            return parsed
        message[plain.group(1)] = plain.group(2)
    return message


class _Connection(http.client.HTTPConnection):
    response_class = _Response


@dataclass(frozen=True)
class Endpoint:
    """Where connections go: a TCP host and port (TLS when a context is given), or a unix socket."""

    host: str
    port: int
    context: ssl.SSLContext | None = None
    server_name: str = ""  # the TLS server name, when it is not the host
    socket_path: str = ""
    proxy: Proxy | None = None

    def new_connection(self) -> http.client.HTTPConnection:
        if self.socket_path:
            return _UnixConnection(self.socket_path)
        if self.context is not None:
            if self.proxy is not None:
                tls = _TLSConnection(self.proxy.host, self.proxy.port, self.context, self.server_name or self.host)
                tls.set_tunnel(self.host, self.port, headers=self.proxy.headers())
                return tls
            return _TLSConnection(self.host, self.port, self.context, self.server_name or self.host)
        if self.proxy is not None:
            return _Connection(self.proxy.host, self.proxy.port)
        return _Connection(self.host, self.port)


class _TLSConnection(_Connection):
    """TLS with our context, and the server name given (SNI and the name the certificate must carry)."""

    default_port = 443

    def __init__(self, host: str, port: int, context: ssl.SSLContext, server_name: str) -> None:
        super().__init__(host, port)
        self._context = context
        self._server_name = server_name

    def connect(self) -> None:
        super().connect()  # TCP, and the CONNECT tunnel through a proxy
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self._server_name)


class _UnixConnection(_Connection):
    """Every request to one unix socket (a Vault Agent listener); the Host header says localhost."""

    def __init__(self, socket_path: str) -> None:
        super().__init__("localhost")
        self._socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)  # type: ignore[arg-type]  # a number: set by the pool before connecting
        try:
            sock.connect(self._socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def _dropped(connection: http.client.HTTPConnection) -> bool:
    """True when a kept connection can no longer carry a request: the server closed it, or sent something
    nobody asked for. An idle HTTP/1.1 connection has nothing to read."""
    sock = connection.sock
    if sock is None:
        return True
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


class ConnectionPool:
    """Keep-alive connections to one endpoint: at most `max_connections` open at once, idle ones reused
    newest first. Thread-safe. After close(), connections in use are closed when they come back.
    `mounts` is the gate the backend passes a mount through before its reads."""

    def __init__(self, endpoint: Endpoint, max_connections: int = MAX_CONNECTIONS, mounts_at_once: int = 4) -> None:
        self.endpoint = endpoint
        self.max_connections = max_connections
        self._slots = threading.BoundedSemaphore(max_connections)
        self._idle: list[tuple[http.client.HTTPConnection, float]] = []
        self._lock = threading.Lock()
        self._closed = False
        self.opened = 0  # connections made so far: lets tests see reuse
        # Mounts reading through this pool at once, admitted in the order they came: more would only wait for
        # connections, and their extra runnable threads make some mounts starve (see FairGate).
        self.mounts = FairGate(mounts_at_once)

    def request(self, method: str, target: str, headers: Mapping[str, str], body: bytes | None,
                connect_timeout: float, read_timeout: float, url: str = "") -> Reply:
        if not self._slots.acquire(timeout=max(0.0, read_timeout)):
            raise ReadTimeout(f"no free connection to {self._where()} within {read_timeout:.0f}s "
                              f"({self.max_connections} in use)")
        try:
            connection, kept = self._take()
            try:
                return self._exchange(connection, method, target, headers, body, connect_timeout, read_timeout,
                                      url, retry_closed=kept)
            except _ClosedWhileIdle:
                # The kept connection had been closed by the server while idle: once more on a new one.
                return self._exchange(self.endpoint.new_connection(), method, target, headers, body,
                                      connect_timeout, read_timeout, url, retry_closed=False)
        finally:
            self._slots.release()

    def _exchange(self, connection: http.client.HTTPConnection, method: str, target: str,
                  headers: Mapping[str, str], body: bytes | None, connect_timeout: float, read_timeout: float,
                  url: str, retry_closed: bool) -> Reply:
        if connection.sock is None:
            self._connect(connection, connect_timeout)
        sock = connection.sock
        assert sock is not None
        try:
            sock.settimeout(read_timeout)
            connection.request(method, target, body=body, headers=dict(headers))
            response = connection.getresponse()
        except _CLOSED_WHILE_IDLE as exc:
            connection.close()
            if retry_closed:
                raise _ClosedWhileIdle from None
            raise self._failure(exc) from None
        except BaseException as exc:
            connection.close()
            raise self._failure(exc) from None
        try:
            content = response.read()
        except BaseException as exc:
            connection.close()
            raise self._failure(exc) from None
        if response.will_close:
            connection.close()
        else:
            self._give_back(connection)
        pairs = response.getheaders()
        return Reply(response.status, Headers(pairs), content, url, response.reason)

    def _connect(self, connection: http.client.HTTPConnection, timeout: float) -> None:
        connection.timeout = timeout
        try:
            connection.connect()
        except ssl.SSLError as exc:
            connection.close()
            raise TLSFailed(f"TLS with {self._where()} failed: {exc}", exc) from None
        except TimeoutError as exc:
            connection.close()
            raise ConnectTimeout(f"connecting to {self._where()} timed out", exc) from None
        except OSError as exc:
            connection.close()
            raise ConnectFailed(f"cannot connect to {self._where()}: {exc}", exc) from None
        with self._lock:
            self.opened += 1

    def _failure(self, exc: BaseException) -> BaseException:
        if isinstance(exc, ssl.SSLError):
            return TLSFailed(f"TLS with {self._where()} failed: {exc}", exc)
        if isinstance(exc, TimeoutError):
            return ReadTimeout(f"{self._where()} did not answer in time (read timed out)", exc)
        if isinstance(exc, (OSError, http.client.HTTPException)):
            return ConnectionBroken(f"the connection to {self._where()} failed: {type(exc).__name__}", exc)
        return exc  # not the network's: a bug or an interrupt, raised as it is

    def _take(self) -> tuple[http.client.HTTPConnection, bool]:
        """A kept connection that is still open, else a new (unconnected) one."""
        now = time.monotonic()
        while True:
            with self._lock:
                if not self._idle:
                    break
                connection, since = self._idle.pop()
            if now - since < IDLE_SECONDS and not _dropped(connection):
                return connection, True
            connection.close()
        return self.endpoint.new_connection(), False

    def _give_back(self, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < self.max_connections:
                self._idle.append((connection, time.monotonic()))
                return
        connection.close()

    def idle(self) -> int:
        with self._lock:
            return len(self._idle)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for connection, _ in idle:
            connection.close()

    def _where(self) -> str:
        endpoint = self.endpoint
        return endpoint.socket_path or f"{endpoint.host}:{endpoint.port}"


class _ClosedWhileIdle(Exception):
    """Control flow inside the pool, never raised out of it."""


class PooledAdapter(hvac.adapters.Adapter):  # type: ignore[misc]  # hvac is untyped
    """hvac's RawAdapter behaviour over a ConnectionPool: requests go out as RawAdapter sends them, answers
    come back as they came (`raise_exception` as in RawAdapter), and a redirect is followed only as
    `redirects.decide` allows under the policy: to `elsewhere(target)`, the endpoint for the target."""

    def __init__(self, base_uri: str, pool: ConnectionPool, namespace: str | None = None,
                 request_header: bool = True, policy: VaultPolicy | None = None, origin: str = "",
                 elsewhere: Callable[[str], Endpoint] | None = None) -> None:
        # Not Adapter.__init__: it builds a requests.Session that this adapter never uses.
        self.base_uri = base_uri.rstrip("/")
        self.token: str | None = None
        self.namespace = namespace
        self.session = None
        self.allow_redirects = False
        self.ignore_exceptions = False
        self.strict_http = False
        self.request_header = request_header
        self._kwargs: dict[str, Any] = {"timeout": DEFAULT_TIMEOUT}
        self.pool = pool
        self._policy = policy or VaultPolicy()
        self._origin = origin  # a unix:// address, which the URLs here only show as http://localhost
        self._elsewhere = elsewhere

    def request(self, method: str, url: str, headers: Mapping[str, str] | None = None, raise_exception: bool = True,
                **kwargs: Any) -> Reply:
        while "//" in url:
            url = url.replace("//", "/")  # as RawAdapter: Vault reads a double slash as one
        full = f"{self.base_uri}/{url.strip('/')}"
        sent = dict(headers or {})
        if self.request_header:
            sent["X-Vault-Request"] = "true"
        if self.token:
            sent["X-Vault-Token"] = self.token
        if self.namespace:
            sent["X-Vault-Namespace"] = self.namespace
        wrap_ttl = kwargs.pop("wrap_ttl", None)
        if wrap_ttl:
            sent["X-Vault-Wrap-TTL"] = str(wrap_ttl)
        body = kwargs.get("data")
        if kwargs.get("json") is not None:
            body = json.dumps(kwargs["json"]).encode()
            sent.setdefault("Content-Type", "application/json")
        if isinstance(body, str):
            body = body.encode()
        method = method.upper()
        params = kwargs.get("params")
        if self.strict_http and method == "LIST":
            method, params = "GET", [*_pairs(params), ("list", "true")]
        full = _prepared_url(full, params)
        timeouts = _timeouts(kwargs.get("timeout", self._kwargs["timeout"]))
        reply = _send(self.pool, method, full, sent, body, timeouts)
        followed = 0
        while reply.status_code in REDIRECT_STATUSES and "location" in reply.headers:
            target = decide(reply.headers["location"], self._origin or full, self._policy,
                            status=reply.status_code, followed=followed)
            followed += 1
            reply = self._send_elsewhere(method, target, sent, body, timeouts)
        if not reply.ok and raise_exception and not self.ignore_exceptions:
            errors = None
            if reply.headers.get("Content-Type") == "application/json":
                try:
                    errors = reply.json().get("errors")
                except (ValueError, AttributeError):
                    errors = None
            hvac.utils.raise_for_error(method, full, reply.status_code, None if errors else reply.text,
                                       errors=errors, text=reply.text)
        return reply

    def _send_elsewhere(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None,
                        timeouts: tuple[float, float]) -> Reply:
        """The same request to a redirect's target, on a connection of its own (redirects are rare: a standby)."""
        if self._elsewhere is None:
            raise ConnectFailed(f"no way to reach {url}")
        pool = ConnectionPool(self._elsewhere(url), max_connections=1)
        try:
            return _send(pool, method, url, headers, body, timeouts)
        finally:
            pool.close()

    def get_login_token(self, response: Reply) -> str:
        return str(response.json()["auth"]["client_token"])

    def close(self) -> None:
        self.pool.close()


def _send(pool: ConnectionPool, method: str, url: str, headers: Mapping[str, str], body: bytes | None,
          timeouts: tuple[float, float]) -> Reply:
    proxy = pool.endpoint.proxy
    if proxy is not None and pool.endpoint.context is None:
        # Plain http through a proxy: the request line carries the whole URL, and the proxy's credentials go too.
        return pool.request(method, url, {**headers, **proxy.headers()}, body, *timeouts, url=url)
    return pool.request(method, _target(url), headers, body, *timeouts, url=url)


def _pairs(params: Any) -> list[tuple[str, str]]:
    if not params:
        return []
    if isinstance(params, Mapping):
        return [(str(k), str(v)) for k, v in params.items()]
    return [(str(k), str(v)) for k, v in params]


def _prepared_url(url: str, params: Any) -> str:
    """The URL as requests would send it: a plain path as it is, anything else quoted by requests' own rules."""
    path = url.split("://", 1)[-1].partition("/")[2]
    if _PLAIN_PATH.match(path):
        pairs = _pairs(params)
        return f"{url}?{urlencode(pairs)}" if pairs else url
    import requests.models  # loaded with hvac already; only odd paths pay for its preparation

    prepared = requests.models.PreparedRequest()
    prepared.prepare_url(url, params)
    return str(prepared.url)


def _target(url: str) -> str:
    """The request target of an absolute URL: path and query."""
    rest = url.split("://", 1)[-1]
    slash = rest.find("/")
    if slash < 0:
        question = rest.find("?")
        return "/" + (rest[question:] if question >= 0 else "")
    return rest[slash:].partition("#")[0]


def _timeouts(timeout: Any) -> tuple[float, float]:
    if isinstance(timeout, tuple):
        connect, read = timeout
        return float(connect if connect is not None else DEFAULT_TIMEOUT), float(read if read is not None
                                                                                  else DEFAULT_TIMEOUT)
    value = float(timeout) if timeout is not None else DEFAULT_TIMEOUT
    return value, value
