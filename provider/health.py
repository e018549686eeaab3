"""HTTP endpoints for the kubelet and Prometheus: `/healthz` (real readiness) and `/metrics`."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import start_http_server

log = logging.getLogger(__name__)


def split_address(address: str) -> tuple[str, int]:
    """`HOST:PORT` or `:PORT` (all interfaces, for probes that come to the pod IP)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"address {address!r} must be HOST:PORT or :PORT, with a port from 0 to 65535")
    return host.strip("[]") or "0.0.0.0", int(port)


class HealthServer:
    """Answers `GET /healthz` with 200 only while every backend socket answers a gRPC health check."""

    def __init__(self, address: str, check: Callable[[], Mapping[str, bool]]) -> None:
        host, port = split_address(address)
        probe = check

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/healthz":
                    self.send_error(404)
                    return
                results = probe()
                ok = bool(results) and all(results.values())
                body = json.dumps({"status": "ok" if ok else "unhealthy", "sockets": results}).encode()
                self.send_response(200 if ok else 503)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return  # probes every few seconds would drown the log

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="healthz", daemon=True)

    def start(self) -> None:
        self._thread.start()
        log.info("health endpoint listening", extra={"fields": {"port": self.port}})

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def start_metrics_server(address: str) -> int:
    """Serve Prometheus' `/metrics`; returns the bound port."""
    host, port = split_address(address)
    server, _ = start_http_server(port, addr=host)
    bound = int(server.server_address[1])
    log.info("metrics endpoint listening", extra={"fields": {"port": bound}})
    return bound
