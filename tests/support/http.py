"""Small pieces the tests' own HTTP servers share: a whole answer, and two sockets relayed both ways."""

from __future__ import annotations

import select
import socket
from http.server import BaseHTTPRequestHandler


def reply(handler: BaseHTTPRequestHandler, status: int, body: bytes = b"",
          headers: dict[str, str] | None = None) -> None:
    """One answer with its Content-Length, so a keep-alive client reads exactly the body."""
    handler.send_response(status)
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def relay(first: socket.socket, second: socket.socket, idle_seconds: float) -> None:
    """Copy bytes each way until either side closes or both are idle for idle_seconds."""
    other = {first: second, second: first}
    while True:
        readable, _, _ = select.select(list(other), [], [], idle_seconds)
        if not readable:
            return
        for sock in readable:
            data = sock.recv(65536)
            if not data:
                return
            other[sock].sendall(data)
