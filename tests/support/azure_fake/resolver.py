"""Name resolution for tests that run the backend in the test process: the fake's host names (port 443)
resolve to the fake's 127.0.0.1 port, every other name as usual. The in-process twin of the daemon's
private /etc/hosts (sandbox.py); the product's code is untouched."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Iterator
from typing import Any


@contextlib.contextmanager
def resolve_to_fake(serves: Callable[[str], bool], port: int) -> Iterator[None]:
    original = socket.getaddrinfo

    def getaddrinfo(host: Any, service: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, bytes):
            host = host.decode()
        if isinstance(host, str) and serves(host):
            if service not in (443, "443", "https"):
                raise socket.gaierror(socket.EAI_SERVICE, "the fake only answers on port 443")
            return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("127.0.0.1", port))]
        if isinstance(host, str) and host.endswith((".test", ".azure.net", ".microsoftonline.com", ".windows.net",
                                                   ".usgovcloudapi.net", ".azure.cn", ".chinacloudapi.cn",
                                                   ".microsoftazure.de", ".microsoftonline.us",
                                                   ".microsoftonline.de")):
            # Never let a test reach the real Azure: a name the fake does not serve does not exist.
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return original(host, service, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo
    try:
        yield
    finally:
        socket.getaddrinfo = original
