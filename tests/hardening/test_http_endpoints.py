"""/healthz and /metrics under clients that connect and never finish: bounded threads, answers for the
kubelet and Prometheus throughout, idle connections closed within a budget.

Anything that reaches the pod's ports may connect. The endpoints used to keep one thread per open
connection with no timeout (400 half-sent requests: 10 → 611 threads, still held 30 s later). The
daemon here is a real `serve` process; its thread count is read from /proc/<pid>/status.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from provider.health import ANSWER_THREADS, HEAD_SECONDS, MAX_HEAD_BYTES
from tests.support.daemon import Daemon, start_daemon

ATTACKERS = 300  # per endpoint: several times the connections an endpoint reads at once
HALF_SENT = b"GET /metrics HTTP/1.1\r\nHost: provider\r\n"  # the blank line that ends the head never comes
# Idle connections must be closed by then: the head deadline plus a margin for a loaded machine.
CLOSE_BUDGET_SECONDS = HEAD_SECONDS + 20


class Endpoints:
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.ports = self._ports()

    def _ports(self) -> dict[str, int]:
        end = time.monotonic() + 10
        while time.monotonic() < end:
            records = [json.loads(line) for line in self.daemon.logs().splitlines() if line.startswith("{")]
            ports = {r["message"].split()[0]: int(r["port"]) for r in records
                     if r.get("message") in ("health endpoint listening", "metrics endpoint listening")}
            if len(ports) == 2:
                return ports
            time.sleep(0.02)
        raise AssertionError(f"the daemon never logged its endpoint ports:\n{self.daemon.logs()}")

    def threads(self) -> int:
        status = Path(f"/proc/{self.daemon.process.pid}/status").read_text()
        return int(next(line for line in status.splitlines() if line.startswith("Threads:")).split()[1])

    def get(self, endpoint: str, path: str) -> tuple[int, bytes]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ports[endpoint]}{path}", timeout=10) as answer:
            return answer.status, answer.read()

    def connect(self, endpoint: str) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.ports[endpoint]), timeout=10)


@pytest.fixture(scope="module")
def endpoints(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoints]:
    base = tmp_path_factory.mktemp("endpoints")
    flags = ["--health-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--log-format", "json"]
    with start_daemon(base / "providers", ["test"], flags, log_level="info") as daemon:
        yield Endpoints(daemon)


def closed_by_server(connection: socket.socket, deadline: float) -> bool:
    """True when the server closes the connection before the deadline (time.monotonic())."""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        connection.settimeout(remaining)
        try:
            if connection.recv(4096) == b"":
                return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False


def test_half_sent_requests_hold_no_threads_and_scrapes_still_answer(endpoints: Endpoints) -> None:
    # Warm up: the answer pools start their threads on first use.
    for _ in range(ANSWER_THREADS):
        assert endpoints.get("health", "/healthz")[0] == 200
        assert endpoints.get("metrics", "/metrics")[0] == 200
    before = endpoints.threads()
    attackers: list[socket.socket] = []
    try:
        for _ in range(ATTACKERS):
            for endpoint in ("health", "metrics"):
                connection = endpoints.connect(endpoint)
                connection.sendall(HALF_SENT)
                attackers.append(connection)
        opened = time.monotonic()
        # The kubelet and Prometheus are answered while every attacker's connection is open or being cut.
        status, body = endpoints.get("health", "/healthz")
        assert (status, json.loads(body)["status"]) == (200, "ok")
        status, body = endpoints.get("metrics", "/metrics")
        assert status == 200 and b"provider_mounts_in_flight" in body
        during = endpoints.threads()
        # Idle connections are closed within the budget, none left held.
        still_open = [c for c in attackers if not closed_by_server(c, opened + CLOSE_BUDGET_SECONDS)]
        assert still_open == []
        after = endpoints.threads()
    finally:
        for connection in attackers:
            connection.close()
    # The old server started a thread per connection (600 here); now none.
    assert during <= before + 2, (before, during)
    assert after <= before + 2, (before, after)


def test_a_trickling_client_is_cut_off_at_the_head_deadline(endpoints: Endpoints) -> None:
    connection = endpoints.connect("metrics")
    started = time.monotonic()
    cut_off = False
    try:
        # One byte a second keeps a per-read timeout from ever firing; the deadline is for the whole head.
        for byte in b"GET /metrics HTTP/1.1\r\nX-Slow: " + b"a" * 60:
            connection.sendall(bytes([byte]))
            if closed_by_server(connection, time.monotonic() + 1):
                cut_off = True
                break
    except (ConnectionResetError, BrokenPipeError):
        cut_off = True
    finally:
        connection.close()
    assert cut_off
    assert time.monotonic() - started < CLOSE_BUDGET_SECONDS


ONE_SHOT = [
    ("health", b"GET /healthz HTTP/1.1\r\nHost: p\r\n\r\n", b"HTTP/1.1 200 OK"),
    ("health", b"GET /healthz?verbose=1 HTTP/1.0\r\n\r\n", b"HTTP/1.1 200 OK"),
    ("health", b"GET /metrics HTTP/1.1\r\n\r\n", b"HTTP/1.1 404 Not Found"),
    ("metrics", b"GET /metrics HTTP/1.1\r\nAccept: application/openmetrics-text; version=1.0.0\r\n\r\n",
     b"HTTP/1.1 200 OK\r\nContent-Type: application/openmetrics-text"),
    ("metrics", b"HEAD /metrics HTTP/1.1\r\n\r\n", b"HTTP/1.1 200 OK"),
    ("metrics", b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", b"HTTP/1.1 405 Method Not Allowed"),
    ("metrics", b"GET /\r\n\r\n", b"HTTP/1.1 400 Bad Request"),
    ("metrics", b"GET /metrics HTTP/1.1\r\nX-Big: " + b"a" * MAX_HEAD_BYTES + b"\r\n\r\n", b""),
]


@pytest.mark.parametrize(("endpoint", "request_bytes", "answer_starts"), ONE_SHOT)
def test_one_request_one_answer_then_closed(
    endpoints: Endpoints, endpoint: str, request_bytes: bytes, answer_starts: bytes
) -> None:
    with endpoints.connect(endpoint) as connection:
        connection.sendall(request_bytes)
        received = b""
        try:
            while chunk := connection.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass  # closed with the rest of an oversized request unread
    assert received.startswith(answer_starts), received[:200]
    if answer_starts and request_bytes.startswith(b"HEAD"):
        assert received.endswith(b"\r\n\r\n")
