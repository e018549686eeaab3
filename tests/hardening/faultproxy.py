"""A small HTTP proxy on 127.0.0.1 in front of a real Vault (OpenBao), which injects one fault at a time.

Everything not faulted passes through to the real server, so logins, policies and values stay real.
Faults: `closed` (nothing listens on the port: connection refused), `silent` (accepts, reads the request,
never answers), `delay` (answers `delay` seconds late), `status` (answers with a status, a Vault-style
error body and optionally Retry-After, for `times` requests or until cleared) and `echo` (an error body
that repeats every header and the body the provider sent, as a careless server or proxy might). The
proxy records what passed through: method, path, time, answer, and the Vault tokens the provider presented.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-authorization",
              "proxy-authenticate", "host", "content-length"}
# A silent answer never comes; the connection is still released after this, so no thread outlives a test.
SILENT_LIMIT_SECONDS = 60.0


@dataclass
class Fault:
    kind: str  # silent | delay | status | echo
    path: str = ""  # a regex searched in the request path; "" matches every request
    status: int = 500
    retry_after: str | None = None
    times: int | None = None  # None: until cleared
    delay: float = 0.0
    hits: int = 0

    def matches(self, path: str) -> bool:
        return (self.times is None or self.hits < self.times) and re.search(self.path, path) is not None


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    at: float
    status: int  # what the provider got; 0 for no answer
    vault_token: str = field(default="", repr=False)


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.fault: Fault | None = None
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._connections: set[socket.socket] = set()
        self._server: ThreadingHTTPServer | None = None
        self.port = 0
        self.open()

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ------------------------------------------------------------------------------ faults
    def inject(self, kind: str, path: str = "", status: int = 500, retry_after: str | None = None,
               times: int | None = None, delay: float = 0.0) -> Fault:
        fault = Fault(kind, path, status, retry_after, times, delay)
        with self._lock:
            self.fault = fault
            self._released.clear()
        return fault

    def clear(self) -> None:
        """No fault, the port open, and every silent request released."""
        with self._lock:
            self.fault = None
            self._released.set()
        if self._server is None:
            self.open()

    def close(self) -> None:
        """Stop listening on the port and drop every open connection: the next connect is refused."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self._released.set()
        with self._lock:
            for connection in list(self._connections):
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)

    def open(self) -> None:
        """Listen (again) on 127.0.0.1, on the same port as before once there was one."""
        self._server = _Server(("127.0.0.1", self.port), self._handler())
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self) -> None:
        self.close()

    # ------------------------------------------------------------------------------ records
    def requests(self, path: str = "", method: str | None = None, since: int = 0) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen[since:] if re.search(path, s.path) and (method is None or s.method == method)]

    def mark(self) -> int:
        with self._lock:
            return len(self.seen)

    def tokens(self) -> set[str]:
        """Every Vault token the provider presented through the proxy."""
        with self._lock:
            return {s.vault_token for s in self.seen if s.vault_token}

    # ------------------------------------------------------------------------------ serving
    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            fault = self.fault
            if fault is None or not fault.matches(path):
                return None
            fault.hits += 1
            return fault

    def _record(self, method: str, path: str, status: int, headers: dict[str, str]) -> None:
        with self._lock:
            self.seen.append(Seen(method, path, time.monotonic(), status, headers.get("x-vault-token", "")))

    def _forward(self, method: str, path: str, headers: dict[str, str], body: bytes
                 ) -> tuple[int, list[tuple[str, str]], bytes]:
        connection = http.client.HTTPConnection(*self.upstream, timeout=30)
        try:
            sent = {k: v for k, v in headers.items() if k not in HOP_BY_HOP}
            connection.request(method, path, body=body or None, headers=sent)
            answer = connection.getresponse()
            data = answer.read()
            kept = [(k, v) for k, v in answer.getheaders() if k.lower() not in HOP_BY_HOP]
            return answer.status, kept, data
        finally:
            connection.close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                with proxy._lock:
                    proxy._connections.add(self.connection)

            def finish(self) -> None:
                with proxy._lock:
                    proxy._connections.discard(self.connection)
                with contextlib.suppress(OSError):
                    super().finish()

            def log_message(self, *args: Any) -> None:
                pass

            def handle_one_request(self) -> None:
                try:
                    super().handle_one_request()
                except OSError:
                    self.close_connection = True

            def __getattr__(self, name: str) -> Any:
                if name.startswith("do_"):  # GET, POST, PUT, LIST, ...: all the same here
                    return self._serve
                raise AttributeError(name)

            def _serve(self) -> None:
                headers = {k.lower(): v for k, v in self.headers.items()}
                body = self.rfile.read(int(headers.get("content-length") or 0))
                path = self.path
                fault = proxy._take_fault(urlsplit(path).path)
                if fault is not None and fault.kind == "silent":
                    proxy._record(self.command, path, 0, headers)
                    proxy._released.wait(SILENT_LIMIT_SECONDS)
                    self.close_connection = True
                    return
                if fault is not None and fault.kind == "delay":
                    proxy._released.wait(fault.delay)
                    fault = None
                if fault is not None:
                    status, extra, data = self._fault_answer(fault, headers, body)
                else:
                    try:
                        status, extra, data = proxy._forward(self.command, path, headers, body)
                    except OSError as exc:
                        status, extra, data = 502, [], json.dumps({"errors": [f"proxy: {exc}"]}).encode()
                proxy._record(self.command, path, status, headers)
                self.send_response(status)
                for key, value in extra:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _fault_answer(self, fault: Fault, headers: dict[str, str], body: bytes
                              ) -> tuple[int, list[tuple[str, str]], bytes]:
                extra = [("Content-Type", "application/json")]
                if fault.retry_after is not None:
                    extra.append(("Retry-After", fault.retry_after))
                if fault.kind == "echo":
                    echoed = f"cannot handle {self.command} {self.path} with headers {headers} and body " \
                             f"{body.decode(errors='replace')}"
                    return fault.status, extra, json.dumps({"errors": [echoed]}).encode()
                message = {429: "request rate limited", 503: "Vault is overloaded"}.get(fault.status,
                                                                                      "internal error")
                return fault.status, extra, json.dumps({"errors": [message]}).encode()

        return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
