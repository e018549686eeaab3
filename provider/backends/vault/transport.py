"""HTTP sessions to Vault, one per connection setting: TLS as the parameters say, or a unix socket.

A session is an hvac adapter over a pool of keep-alive connections (httpadapter.py). It ignores the
process environment (no REQUESTS_CA_BUNDLE, no .netrc) except for proxies, so the trust a mount gets is
the one its parameters and the daemon's flags describe. Sessions are kept a few minutes for connection
reuse, then rebuilt so a rotated CA or client certificate is picked up; at most MAX_SESSIONS are kept,
so at most that many pools of at most MAX_CONNECTIONS connections each.
"""

from __future__ import annotations

import os
import ssl
import stat
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests.utils

from provider.backends.vault.config import Connection, TLSSettings
from provider.backends.vault.httpadapter import MAX_CONNECTIONS, ConnectionPool, Endpoint, PooledAdapter, Proxy
from provider.backends.vault.policy import VaultPolicy
from provider.errors import ErrorKind, ProviderError, invalid
from provider.policy import under_directory

SESSION_SECONDS = 300.0
MAX_SESSIONS = 64
MAX_PEM_BYTES = 4 * 1024 * 1024  # a CA bundle is a few hundred KiB


@dataclass
class VaultSession:
    adapter: PooledAdapter
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


def build_session(connection: Connection, policy: VaultPolicy | None = None,
                  mounts_at_once: int = 4) -> PooledAdapter:
    """An hvac adapter with its own connection pool, set up for the connection (does file I/O for certificates);
    a redirect is followed only as `redirects.decide` allows under the policy."""
    parts = urlsplit(connection.address)
    namespace = connection.namespace or None
    if parts.scheme == "unix":
        endpoint = Endpoint("localhost", 80, socket_path=parts.path or parts.netloc)
        return PooledAdapter("http://localhost", ConnectionPool(endpoint, mounts_at_once=mounts_at_once),
                             namespace=namespace, policy=policy, origin=connection.address)
    tls = connection.tls
    secure = parts.scheme == "https"
    proxy = _environment_proxy(connection.address)
    context = tls_context(tls) if secure else None
    endpoint = Endpoint(parts.hostname or "", parts.port or (443 if secure else 80), context=context,
                        server_name=tls.server_name, proxy=proxy)

    def elsewhere(url: str) -> Endpoint:
        """Where a redirect the policy allowed goes: with the same TLS settings, through the target's proxy."""
        target = urlsplit(url)
        https = target.scheme == "https"
        return Endpoint(target.hostname or "", target.port or (443 if https else 80),
                        context=(context or tls_context(tls)) if https else None, server_name=tls.server_name,
                        proxy=_environment_proxy(url))

    pool = ConnectionPool(endpoint, mounts_at_once=mounts_at_once)
    return PooledAdapter(connection.address, pool, namespace=namespace, policy=policy, elsewhere=elsewhere)


def _environment_proxy(address: str) -> Proxy | None:
    """The proxy the environment names for the address (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, NO_PROXY), as
    requests reads them."""
    chosen = requests.utils.select_proxy(address, requests.utils.get_environ_proxies(address))
    if not chosen:
        return None
    try:
        return Proxy.from_url(chosen)
    except ValueError as exc:
        raise invalid(f"the proxy for {address} from the daemon's environment cannot be used: {exc}") from None


class SessionCache:
    """Adapters by connection setting, rebuilt after SESSION_SECONDS, at most MAX_SESSIONS kept."""

    def __init__(self, policy: VaultPolicy | None = None, reads_per_mount: int = 8) -> None:
        self._policy = policy or VaultPolicy()
        # As many mounts read through one pool at once as its connections can serve together.
        self.mounts_at_once = max(1, MAX_CONNECTIONS // max(1, reads_per_mount))
        self._sessions: OrderedDict[Connection, VaultSession] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, connection: Connection) -> PooledAdapter:
        now = time.monotonic()
        with self._lock:
            found = self._sessions.get(connection)
            if found is not None and now - found.created < SESSION_SECONDS:
                self._sessions.move_to_end(connection)
                return found.adapter
            # Built under the lock: parallel first mounts share one session instead of each building one.
            adapter = build_session(connection, self._policy, self.mounts_at_once)
            old = self._sessions.pop(connection, None)
            self._sessions[connection] = VaultSession(adapter, now)
            while len(self._sessions) > MAX_SESSIONS:
                _, evicted = self._sessions.popitem(last=False)
                _close_later(evicted.adapter)
        if old is not None:
            _close_later(old.adapter)
        return adapter


def _close_later(adapter: PooledAdapter) -> None:
    # Requests in flight may still use the old session; let them finish before closing its pools.
    timer = threading.Timer(120.0, adapter.close)
    timer.daemon = True
    timer.start()
