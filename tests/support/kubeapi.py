"""A stub kube-apiserver on 127.0.0.1 for the two calls the Vault tests need.

- TokenReview (`POST /apis/authentication.k8s.io/v1/tokenreviews`): what OpenBao's Kubernetes auth
  asks; answered by verifying the JWT with the tests' Issuer key, as the API server would.
- TokenRequest (`POST /api/v1/namespaces/<ns>/serviceaccounts/<sa>/token`): what the provider asks when
  the driver sent no token; answered with a pod-bound token from the Issuer, only for the bearer token
  the stub was given (the provider's own credentials), and refused (403) for `forbidden` accounts.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import yaml

from tests.support.service_accounts import Issuer

TOKEN_PATH = re.compile(r"^/api/v1/namespaces/([^/]+)/serviceaccounts/([^/]+)/token$")


@dataclass
class TokenRequestRecord:
    namespace: str
    service_account: str
    audiences: list[str]
    expiration_seconds: int
    bound: dict[str, Any]


@dataclass
class KubeAPI:
    issuer: Issuer
    provider_token: str = "provider-own-credential-7f3a"
    forbidden: set[str] = field(default_factory=set)  # "namespace/serviceaccount" the provider may not mint for
    token_requests: list[TokenRequestRecord] = field(default_factory=list)
    reviews: int = 0

    def __post_init__(self) -> None:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                if self.path == "/apis/authentication.k8s.io/v1/tokenreviews":
                    self._send(200, api.review(body))
                    return
                match = TOKEN_PATH.match(self.path)
                if not match:
                    self._send(404, {"kind": "Status", "message": "not found"})
                    return
                if self.headers.get("Authorization") != f"Bearer {api.provider_token}":
                    self._send(401, {"kind": "Status", "message": "Unauthorized"})
                    return
                status, answer = api.mint(match.group(1), match.group(2), body)
                self._send(status, answer)

            def _send(self, status: int, answer: dict[str, Any]) -> None:
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def review(self, body: dict[str, Any]) -> dict[str, Any]:
        self.reviews += 1
        spec = body.get("spec") or {}
        audiences = spec.get("audiences") or [self.issuer.issuer]
        status: dict[str, Any]
        try:
            claims = jwt.decode(spec.get("token", ""), self.issuer.key.public_key(), algorithms=["RS256"],
                                options={"verify_aud": False})
            granted = [a for a in audiences if a in claims["aud"]]
            if not granted:
                raise jwt.InvalidAudienceError("token audiences do not match")
            account = claims["kubernetes.io"]["serviceaccount"]
            namespace = claims["kubernetes.io"]["namespace"]
            status = {
                "authenticated": True,
                "user": {"username": claims["sub"], "uid": account["uid"],
                         "groups": ["system:serviceaccounts", f"system:serviceaccounts:{namespace}"]},
                "audiences": granted,
            }
        except (jwt.PyJWTError, KeyError) as exc:
            status = {"authenticated": False, "error": str(exc)}
        return {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "status": status}

    def mint(self, namespace: str, service_account: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        spec = body.get("spec") or {}
        bound = spec.get("boundObjectRef") or {}
        self.token_requests.append(TokenRequestRecord(namespace, service_account, list(spec.get("audiences") or []),
                                                      int(spec.get("expirationSeconds") or 3600), bound))
        if f"{namespace}/{service_account}" in self.forbidden:
            return 403, {"kind": "Status", "message": f'serviceaccounts "{service_account}" is forbidden: User '
                         '"system:serviceaccount:csi:provider" cannot create resource "serviceaccounts/token"'}
        lifetime = int(spec.get("expirationSeconds") or 3600)
        token = self.issuer.pod_token(namespace=namespace, service_account=service_account,
                                      pod_name=bound.get("name", ""), pod_uid=bound.get("uid", ""),
                                      audience=list(spec.get("audiences") or [self.issuer.issuer]), lifetime=lifetime)
        return 201, {"kind": "TokenRequest", "status": {"token": token, "expirationTimestamp": "2030-01-01T00:00:00Z"}}

    def write_kubeconfig(self, path: Path) -> Path:
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": "stub",
            "clusters": [{"name": "stub", "cluster": {"server": self.url}}],
            "users": [{"name": "provider", "user": {"token": self.provider_token}}],
            "contexts": [{"name": "stub", "context": {"cluster": "stub", "user": "provider"}}],
        }
        path.write_text(yaml.safe_dump(config))
        return path

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
