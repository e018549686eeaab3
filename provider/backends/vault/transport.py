"""HTTP sessions to Vault, one per connection setting: TLS as the parameters say, or a unix socket.

The session ignores the process environment (no REQUESTS_CA_BUNDLE, no .netrc) except for proxies, so
the trust a mount gets is the one its parameters and the daemon's flags describe. Sessions are kept a
few minutes for connection reuse, then rebuilt so a rotated CA or client certificate is picked up.
"""

from __future__ import annotations

import os
import socket
import ssl
import stat
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import hvac.adapters
import requests
import requests.adapters
import requests.utils
import urllib3.connection
import urllib3.connectionpool
import urllib3.exceptions

from provider.backends.vault.config import Connection, TLSSettings
from provider.backends.vault.redirects import REDIRECT_STATUSES, decide
from provider.errors import ErrorKind, ProviderError, invalid
from provider.policy import EndpointPolicy, under_directory

SESSION_SECONDS = 300.0
MAX_SESSIONS = 64
POOL_SIZE = 16
MAX_PEM_BYTES = 4 * 1024 * 1024  # a CA bundle is a few hundred KiB


@dataclass
class VaultSession:
    adapter: hvac.adapters.RawAdapter
    created: float


def tls_context(tls: TLSSettings) -> ssl.SSLContext:
    """Trust the given CA file and/or directory (else the system's), present the client certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if tls.skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if tls.ca_cert:
        _load_ca(context, tls.ca_cert, "vaultCACertPath", tls.ca_root)
    if tls.ca_directory:
        _load_ca_directory(context, tls.ca_directory, tls.ca_root)
    if not (tls.ca_cert or tls.ca_directory):
        context.load_default_certs()
        _load_certifi(context)
    if tls.client_cert:
        _check_confined(tls.client_cert, "vaultTLSClientCertPath", tls.client_root)
        _check_confined(tls.client_key, "vaultTLSClientKeyPath", tls.client_root)
        _check_regular_file(tls.client_cert, "vaultTLSClientCertPath")
        _check_regular_file(tls.client_key, "vaultTLSClientKeyPath")
        try:
            context.load_cert_chain(tls.client_cert, tls.client_key)
        except (OSError, ssl.SSLError) as exc:
            raise invalid(f"vaultTLSClientCertPath {tls.client_cert} / vaultTLSClientKeyPath {tls.client_key}: "
                          f"cannot load a PEM certificate and its key ({_reason(exc)}); the paths are on the "
                          "provider's filesystem") from None
    return context


def _check_confined(path: str, parameter: str, root: str) -> None:
    """With a root (the SPC named the file), the file must resolve under it, symbolic links followed, as it
    is read: a directory's entries were never looked at by the plan, and links may have changed since."""
    if root and not under_directory(os.path.realpath(path), root):
        raise ProviderError(ErrorKind.PERMISSION_DENIED,
                            f"{parameter} must name a file under the directory set by --allowed-files-dir; "
                            f"{os.path.basename(path)!r} is a symbolic link that leads outside it")


def _check_regular_file(path: str, parameter: str) -> None:
    """Refuse what is not a regular file of a PEM file's size before opening it: opening a FIFO blocks, and a
    session is built under the session cache's lock, so one such file would hold up every Vault mount.
    A file that cannot be looked at is left to the open that follows, which says why."""
    try:
        info = os.stat(path)
    except OSError:
        return
    if not stat.S_ISREG(info.st_mode):
        raise invalid(f"{parameter} {path} is not a regular file; the path is on the provider's filesystem")
    if info.st_size > MAX_PEM_BYTES:
        raise invalid(f"{parameter} {path} is larger than {MAX_PEM_BYTES} bytes; it is not a PEM file")


def _load_ca(context: ssl.SSLContext, path: str, parameter: str, root: str) -> None:
    _check_confined(path, parameter, root)
    _check_regular_file(path, parameter)
    try:
        with open(path) as handle:
            context.load_verify_locations(cadata=handle.read())
    except (OSError, ssl.SSLError, ValueError, UnicodeDecodeError) as exc:
        raise invalid(f"{parameter} {path}: cannot load PEM CA certificates from it ({_reason(exc)}); the path is "
                      "on the provider's filesystem") from None


def _load_ca_directory(context: ssl.SSLContext, directory: str, root: str) -> None:
    """Every regular file of the directory, each resolved on its own (an entry may be a link)."""
    try:
        names = sorted(os.listdir(directory))
    except OSError as exc:
        raise invalid(f"vaultCADirectory {directory}: cannot list it ({_reason(exc)})") from None
    for name in names:
        path = os.path.join(directory, name)
        _check_confined(path, "vaultCADirectory file", root)
        if os.path.isfile(path):
            _load_ca(context, path, "vaultCADirectory file", root)


def _load_certifi(context: ssl.SSLContext) -> None:
    try:
        import certifi  # requests' own CA bundle, for images without system certificates
    except ImportError:
        return
    context.load_verify_locations(cafile=certifi.where())


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or getattr(exc, "reason", None) or type(exc).__name__


class _TLSAdapter(requests.adapters.HTTPAdapter):
    """Connections with our SSLContext and, when set, the TLS server name (SNI and verification)."""

    def __init__(self, context: ssl.SSLContext, server_name: str) -> None:
        self._context = context
        self._server_name = server_name
        super().__init__(pool_connections=4, pool_maxsize=POOL_SIZE)

    def _tls_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        kwargs["ssl_context"] = self._context
        if self._server_name:
            kwargs["server_hostname"] = self._server_name
        return kwargs

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **kwargs: Any) -> None:
        super().init_poolmanager(connections, maxsize, block, **self._tls_kwargs(kwargs))

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
        return super().proxy_manager_for(proxy, **self._tls_kwargs(kwargs))


class _UnixConnection(urllib3.connection.HTTPConnection):
    def __init__(self, *args: Any, socket_path: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._socket_path = socket_path

    def _new_conn(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout if isinstance(self.timeout, (int, float)) else None)
        try:
            sock.connect(self._socket_path)
        except OSError as exc:
            sock.close()
            raise urllib3.exceptions.NewConnectionError(self, f"cannot connect to {self._socket_path}: {exc}") from exc
        return sock


class _UnixPool(urllib3.connectionpool.HTTPConnectionPool):
    ConnectionCls = _UnixConnection


class _UnixAdapter(requests.adapters.HTTPAdapter):
    """Every request of the session goes to one unix socket (a Vault Agent listener)."""

    def __init__(self, socket_path: str) -> None:
        super().__init__()
        self._pool = _UnixPool("localhost", maxsize=POOL_SIZE, socket_path=socket_path)

    def get_connection_with_tls_context(self, request: Any, verify: Any, proxies: Any = None, cert: Any = None) -> Any:
        return self._pool

    def get_connection(self, url: Any, proxies: Any = None) -> Any:
        return self._pool

    def close(self) -> None:
        self._pool.close()
        super().close()


class _RedirectingAdapter(hvac.adapters.RawAdapter):
    """hvac's adapter with requests' automatic redirects off; a redirect is followed here, once at most, to
    a target `redirects.decide` allows, with the same method, headers and body."""

    def __init__(self, *, policy: EndpointPolicy, origin: str, **kwargs: Any) -> None:
        super().__init__(allow_redirects=False, **kwargs)
        self._policy = policy
        self._origin = origin  # a unix:// address, which requests only sees as http://localhost

    def request(self, method: str, url: str, headers: dict[str, str] | None = None, raise_exception: bool = True,
                **kwargs: Any) -> requests.Response:
        response: requests.Response = super().request(method, url, headers=headers, raise_exception=False, **kwargs)
        followed = 0
        while response.status_code in REDIRECT_STATUSES and "location" in response.headers:
            target = decide(response.headers["location"], self._origin or response.url, self._policy,
                            status=response.status_code, followed=followed)
            followed += 1
            response.close()
            response = self._send_to(response.request, target, kwargs.get("timeout"))
        if raise_exception and not response.ok and not self.ignore_exceptions:
            self._raise_for_error(method, url, response)
        return response

    def _send_to(self, sent: requests.PreparedRequest, target: str, timeout: Any) -> requests.Response:
        again = sent.copy()
        again.prepare_url(target, None)
        proxies = requests.utils.get_environ_proxies(target)  # the target's, as for the address itself
        return self.session.send(again, allow_redirects=False, timeout=timeout, verify=self.session.verify,
                                 proxies=proxies)


def build_session(connection: Connection, policy: EndpointPolicy | None = None) -> hvac.adapters.RawAdapter:
    """An hvac adapter over a session set up for the connection (does file I/O for certificates); redirects
    are followed only as `redirects.decide` allows under the policy."""
    session = requests.Session()
    session.trust_env = False
    parts = urlsplit(connection.address)
    if parts.scheme == "unix":
        session.mount("http://", _UnixAdapter(parts.path or parts.netloc))
        base, proxies, verify = "http://localhost", {}, True
    else:
        tls = connection.tls
        if parts.scheme == "https":
            session.mount("https://", _TLSAdapter(tls_context(tls), tls.server_name))
        base, verify = connection.address, not tls.skip_verify
        proxies = requests.utils.get_environ_proxies(connection.address)
    session.verify = verify
    session.proxies = proxies
    return _RedirectingAdapter(policy=policy or EndpointPolicy(), origin=connection.address if parts.scheme == "unix"
                               else "", base_uri=base, session=session, verify=verify, proxies=proxies,
                               namespace=connection.namespace or None, request_header=True)


class SessionCache:
    """Adapters by connection setting, rebuilt after SESSION_SECONDS, at most MAX_SESSIONS kept."""

    def __init__(self, policy: EndpointPolicy | None = None) -> None:
        self._policy = policy or EndpointPolicy()
        self._sessions: OrderedDict[Connection, VaultSession] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, connection: Connection) -> hvac.adapters.RawAdapter:
        now = time.monotonic()
        with self._lock:
            found = self._sessions.get(connection)
            if found is not None and now - found.created < SESSION_SECONDS:
                self._sessions.move_to_end(connection)
                return found.adapter
            # Built under the lock: parallel first mounts share one session instead of each building one.
            adapter = build_session(connection, self._policy)
            old = self._sessions.pop(connection, None)
            self._sessions[connection] = VaultSession(adapter, now)
            while len(self._sessions) > MAX_SESSIONS:
                _, evicted = self._sessions.popitem(last=False)
                _close_later(evicted.adapter)
        if old is not None:
            _close_later(old.adapter)
        return adapter


def _close_later(adapter: hvac.adapters.RawAdapter) -> None:
    # Requests in flight may still use the old session; let them finish before closing its pools.
    timer = threading.Timer(120.0, adapter.close)
    timer.daemon = True
    timer.start()
