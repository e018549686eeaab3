"""HTTP endpoints for the kubelet and Prometheus: `/healthz` (real readiness) and `/metrics`.

Anything that reaches the pod's ports may connect, so a client must not be able to hold the daemon's
resources: one thread per endpoint runs an event loop that reads every request head within
HEAD_SECONDS (an idle or slow client costs a file descriptor for that long, never a thread); at most
MAX_CONNECTIONS heads are awaited at once, and a new connection closes the oldest of them, so a scraper
that sends its request at once is always read; a small pool of ANSWER_THREADS computes the answers, and
each connection carries one request and is closed.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import socket
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.exposition import choose_encoder

log = logging.getLogger(__name__)

HEAD_SECONDS = 5.0  # from accepting a connection to the end of its request head
SEND_SECONDS = 10.0  # for the answer to be taken by the client
MAX_HEAD_BYTES = 8192
MAX_CONNECTIONS = 64  # request heads awaited at once, per endpoint
ANSWER_THREADS = 2
MAX_QUEUED_ANSWERS = 16  # beyond this a request is answered 503 at once
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
           500: "Internal Server Error", 503: "Service Unavailable"}


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes
    encoding: str = ""


# A route gets the request's headers (lower-case names) and returns the answer.
Route = Callable[[Mapping[str, str]], Answer]


def split_address(address: str) -> tuple[str, int]:
    """`HOST:PORT` or `:PORT` (all interfaces, for probes that come to the pod IP)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"address {address!r} must be HOST:PORT or :PORT, with a port from 0 to 65535")
    return host.strip("[]") or "0.0.0.0", int(port)


def health_route(check: Callable[[], Mapping[str, bool]]) -> Route:
    """200 only while every backend socket answers a gRPC health check; 503 and which did not otherwise."""

    def answer(headers: Mapping[str, str]) -> Answer:
        results = check()
        ok = bool(results) and all(results.values())
        body = json.dumps({"status": "ok" if ok else "unhealthy", "sockets": results}).encode()
        return Answer(200 if ok else 503, "application/json", body)

    return answer


def metrics_route(registry: CollectorRegistry = REGISTRY) -> Route:
    """Prometheus' exposition, in the format the scraper asks for, gzipped when it accepts that."""

    def answer(headers: Mapping[str, str]) -> Answer:
        encoder, content_type = choose_encoder(headers.get("accept", ""))
        body = encoder(registry)
        if "gzip" in headers.get("accept-encoding", ""):
            return Answer(200, content_type, gzip.compress(body), "gzip")
        return Answer(200, content_type, body)

    return answer


class EndpointServer:
    """Serves routes on one TCP address. The constructor binds (so a taken port fails at start-up, before
    any socket is created); start() serves; stop() closes every connection."""

    def __init__(self, address: str, routes: Mapping[str, Route], name: str) -> None:
        host, port = split_address(address)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.name = name
        self._routes = dict(routes)
        self._listener = socket.create_server((host, port), family=family, backlog=128)
        self._listener.setblocking(False)
        self.port: int = self._listener.getsockname()[1]
        self._pool = ThreadPoolExecutor(ANSWER_THREADS, thread_name_prefix=f"{name}-answer")
        self._reading: dict[asyncio.StreamWriter, None] = {}  # awaiting their head, oldest first
        self._open: set[asyncio.StreamWriter] = set()
        self._queued = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"{name}-endpoint", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait()
        log.info("%s endpoint listening", self.name, extra={"fields": {"port": self.port}})

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
            self._thread.join(HEAD_SECONDS)
        self._listener.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except Exception:
            log.exception("endpoint stopped serving", extra={"fields": {"endpoint": self.name}})
        finally:
            self._ready.set()  # start() must not wait for a loop that has died

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        server = await asyncio.start_server(self._connection, sock=self._listener, limit=MAX_HEAD_BYTES,
                                            backlog=128)
        self._ready.set()
        await self._stopping.wait()
        server.close()
        for writer in list(self._open):
            writer.transport.abort()
        await server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._open.add(writer)
        self._reading[writer] = None
        if len(self._reading) > MAX_CONNECTIONS:
            oldest = next(iter(self._reading))
            del self._reading[oldest]
            oldest.transport.abort()
        closed = False
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_SECONDS)
            finally:
                self._reading.pop(writer, None)
            method, answer = await self._answer(head)
            writer.write(_response(answer, with_body=method != "HEAD"))
            writer.close()  # sends what is buffered, then closes
            await asyncio.wait_for(writer.wait_closed(), SEND_SECONDS)
            closed = True
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass  # a client that went away, stalled or sent too much: closing is all it gets
        finally:
            self._open.discard(writer)
            if not closed:
                writer.transport.abort()

    async def _answer(self, head: bytes) -> tuple[str, Answer]:
        method, path, headers = _parse_head(head)
        if not method:
            return method, _text(400, "bad request")
        if method not in ("GET", "HEAD"):
            return method, _text(405, "only GET")
        route = self._routes.get(path)
        if route is None:
            return method, _text(404, "not found")
        if self._queued >= MAX_QUEUED_ANSWERS:
            return method, _text(503, "busy")
        self._queued += 1
        try:
            assert self._loop is not None
            return method, await self._loop.run_in_executor(self._pool, route, headers)
        except Exception:
            log.exception("endpoint answer failed", extra={"fields": {"endpoint": self.name, "path": path}})
            return method, _text(500, "internal error; the provider log has the details")
        finally:
            self._queued -= 1


def _parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    """Method, path (without the query) and lower-cased headers; an empty method when malformed."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        return "", "", {}
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return parts[0], parts[1].split("?")[0], headers


def _text(status: int, message: str) -> Answer:
    return Answer(status, "text/plain; charset=utf-8", f"{message}\n".encode())


def _response(answer: Answer, with_body: bool) -> bytes:
    lines = [
        f"HTTP/1.1 {answer.status} {REASONS.get(answer.status, '')}",
        f"Content-Type: {answer.content_type}",
        f"Content-Length: {len(answer.body)}",
        "Connection: close",
    ]
    if answer.encoding:
        lines.append(f"Content-Encoding: {answer.encoding}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + answer.body if with_body else head
