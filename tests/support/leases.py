"""Dynamic secrets with real leases from OpenBao in dev mode, without a database.

- PKI certificates from a role with `generate_lease=true`: leased, not renewable.
- RabbitMQ credentials: OpenBao's built-in `rabbitmq` engine creates a user through RabbitMQ's HTTP
  management API for each read, and its leases are renewable. `RabbitMQFake` is that API, reduced to
  what the engine calls (create a user, grant it a vhost, delete it), on 127.0.0.1; it stops with the
  test process.
"""

from __future__ import annotations

import contextlib
import json
import threading
import urllib.error
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

from tests.support.openbao import OpenBao

LEASE_POLICY = "lease-policy"
LEASED_PKI_ROLE = "leased-cert"
NAMESPACE = "test"


class RabbitMQFake:
    """The management API's users and permissions, kept in memory; `users` are the live ones."""

    def __init__(self) -> None:
        self.users: dict[str, str] = {}
        self.deleted: list[str] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, status: int, body: bytes = b"") -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_PUT(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body: Any = json.loads(self.rfile.read(length) or b"{}")
                parts = [unquote(p) for p in self.path.split("?")[0].strip("/").split("/")]
                if parts[:2] == ["api", "users"] and len(parts) == 3:
                    with fake._lock:
                        fake.users[parts[2]] = str(body.get("password", ""))
                    self._answer(201)
                elif parts[:2] == ["api", "permissions"] and len(parts) == 4:
                    self._answer(201 if parts[3] in fake.users else 404)
                else:
                    self._answer(404)

            def do_DELETE(self) -> None:
                parts = [unquote(p) for p in self.path.split("?")[0].strip("/").split("/")]
                with fake._lock:
                    found = fake.users.pop(parts[-1], None)
                    if found is not None:
                        fake.deleted.append(parts[-1])
                self._answer(204 if found is not None else 404)

            def do_GET(self) -> None:
                self._answer(200, b"{}")

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def configure_leases(bao: OpenBao, rabbitmq: RabbitMQFake | None, engines: dict[str, tuple[str, str]],
                     roles: dict[str, tuple[str, str]], pki_ttl: str = "6s") -> None:
    """RabbitMQ engines at `engines` (mount → (lease ttl, max ttl)), each with role `app`; the PKI role
    LEASED_PKI_ROLE with leases; a policy for all of them; JWT roles (name → (service account, token ttl))
    for service accounts of namespace `test`, audience `vault`, with the default policy (which lets a token
    renew itself and its leases). Configuring again (another test module) changes nothing."""
    paths = [f'path "{mount}/creds/app" {{ capabilities = ["read"] }}' for mount in engines]
    paths.append(f'path "pki/issue/{LEASED_PKI_ROLE}" {{ capabilities = ["create", "update"] }}')
    bao.api("PUT", f"sys/policies/acl/{LEASE_POLICY}", {"policy": "\n".join(paths)})
    for mount, (ttl, max_ttl) in engines.items():
        assert rabbitmq is not None
        with contextlib.suppress(urllib.error.HTTPError):  # already mounted
            bao.api("POST", f"sys/mounts/{mount}", {"type": "rabbitmq"})
        bao.api("POST", f"{mount}/config/connection", {"connection_uri": rabbitmq.url, "username": "admin",
                                                       "password": "admin-password", "verify_connection": False})
        bao.api("POST", f"{mount}/config/lease", {"ttl": ttl, "max_ttl": max_ttl})
        bao.api("POST", f"{mount}/roles/app", {"vhosts": json.dumps({"/": {"write": ".*", "read": ".*"}})})
    bao.api("POST", f"pki/roles/{LEASED_PKI_ROLE}", {"allowed_domains": "example.com", "allow_subdomains": True,
                                                     "ttl": pki_ttl, "max_ttl": "1h", "generate_lease": True,
                                                     "key_type": "ec", "key_bits": 256, "no_store": False})
    for role, (account, token_ttl) in roles.items():
        bao.api("POST", f"auth/jwt/role/{role}", {
            "role_type": "jwt", "user_claim": "sub", "bound_audiences": ["vault"],
            "bound_subject": f"system:serviceaccount:{NAMESPACE}:{account}", "token_policies": [LEASE_POLICY],
            "token_ttl": token_ttl, "token_max_ttl": "1h"})
