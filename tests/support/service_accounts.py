"""The tests' kube-apiserver: an RSA issuer key and pod-bound service-account JWTs with real claims."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER = "https://kubernetes.default.svc.cluster.local"


@dataclass
class Issuer:
    """Signs service-account tokens the way kube-apiserver's TokenRequest does."""

    issuer: str = ISSUER
    key: rsa.RSAPrivateKey = field(default_factory=lambda: rsa.generate_private_key(65537, 2048))
    key_id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])

    @property
    def public_pem(self) -> str:
        return self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()

    def jwks(self) -> dict[str, object]:
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        jwk.update({"kid": self.key_id, "use": "sig", "alg": "RS256"})
        return {"keys": [jwk]}

    def pod_token(
        self,
        *,
        namespace: str,
        service_account: str,
        pod_name: str,
        pod_uid: str,
        audience: str | list[str],
        lifetime: int = 600,
        issued_at: float | None = None,
    ) -> str:
        now = int(issued_at if issued_at is not None else time.time())
        claims = {
            "iss": self.issuer,
            "sub": f"system:serviceaccount:{namespace}:{service_account}",
            "aud": [audience] if isinstance(audience, str) else audience,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "jti": str(uuid.uuid4()),
            "kubernetes.io": {
                "namespace": namespace,
                "pod": {"name": pod_name, "uid": pod_uid},
                "serviceaccount": {
                    "name": service_account,
                    "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{namespace}/{service_account}")),
                },
            },
        }
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.key_id})
