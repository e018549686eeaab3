"""The fake Key Vault's contents: vaults with secrets, keys and certificates, each with versions.

A certificate is stored the way Key Vault stores one: a certificate version plus a managed secret (the
PFX or PEM, with `kid`) and a managed key of the same name and version.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.support.azure_fake.pki import Issued, PrivateKey, pfx, pfx_in_order

_CREATED = itertools.count(int(time.time()) - 100_000)
_CURVE_NAMES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
PERMISSIONS = ("secrets/get", "secrets/list", "keys/get", "keys/list", "certificates/get", "certificates/list")


def new_version() -> str:
    return secrets.token_hex(16)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _int_bytes(value: int, length: int | None = None) -> bytes:
    return value.to_bytes(length or max(1, (value.bit_length() + 7) // 8), "big")


def jwk_of(key: PrivateKey | rsa.RSAPublicKey | ec.EllipticCurvePublicKey) -> dict[str, Any]:
    """The public JWK Key Vault returns for a key (base64url without padding)."""
    public = key.public_key() if isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)) else key
    if isinstance(public, rsa.RSAPublicKey):
        numbers = public.public_numbers()
        return {"kty": "RSA", "key_ops": ["encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"],
                "n": b64url(_int_bytes(numbers.n)), "e": b64url(_int_bytes(numbers.e))}
    numbers_ec = public.public_numbers()
    size = (public.curve.key_size + 7) // 8
    return {"kty": "EC", "key_ops": ["sign", "verify"], "crv": _CURVE_NAMES[public.curve.name],
            "x": b64url(_int_bytes(numbers_ec.x, size)), "y": b64url(_int_bytes(numbers_ec.y, size))}


@dataclass
class Attributes:
    enabled: bool = True
    created: int = field(default_factory=lambda: next(_CREATED))

    def to_json(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "enabled": self.enabled,
            "created": self.created,
            "updated": self.created,
            "recoveryLevel": "Recoverable+Purgeable",
            "recoverableDays": 90,
        }
        body.update(extra or {})
        return body


@dataclass
class SecretVersion:
    version: str
    value: str | None = field(repr=False)  # None: a bundle without "value"
    content_type: str | None = None
    kid: str | None = None  # the key's id, for a certificate-backed secret
    attributes: Attributes = field(default_factory=Attributes)


@dataclass
class KeyVersion:
    version: str
    jwk: dict[str, Any]
    attributes: Attributes = field(default_factory=Attributes)


@dataclass
class CertificateVersion:
    version: str
    cer: bytes | None  # None: a bundle without "cer"
    content_type: str
    attributes: Attributes = field(default_factory=Attributes)


@dataclass
class Vault:
    """One vault: objects by kind and lower-case name, versions in creation order; who may read what."""

    name: str
    tenant_id: str
    secrets: dict[str, list[SecretVersion]] = field(default_factory=dict)
    keys: dict[str, list[KeyVersion]] = field(default_factory=dict)
    certificates: dict[str, list[CertificateVersion]] = field(default_factory=dict)
    access: dict[str, set[str]] = field(default_factory=dict)  # principal object id → permissions
    display_names: dict[str, str] = field(default_factory=dict)  # lower-case name → the name as created
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def grant(self, principal_id: str, *permissions: str) -> None:
        self.access.setdefault(principal_id, set()).update(permissions or PERMISSIONS)

    def revoke(self, principal_id: str) -> None:
        self.access.pop(principal_id, None)

    def allowed(self, principal_id: str, permission: str) -> bool:
        return permission in self.access.get(principal_id, set())

    def set_secret(self, name: str, value: str | None, content_type: str | None = None, *, enabled: bool = True,
                   created: int | None = None, kid: str | None = None, version: str | None = None) -> str:
        item = SecretVersion(version or new_version(), value, content_type, kid, _attrs(enabled, created))
        with self.lock:
            self.display_names.setdefault(name.lower(), name)
            self.secrets.setdefault(name.lower(), []).append(item)
        return item.version

    def add_key(self, name: str, key: PrivateKey | dict[str, Any], *, enabled: bool = True,
                created: int | None = None, version: str | None = None) -> str:
        jwk = dict(key) if isinstance(key, dict) else jwk_of(key)
        item = KeyVersion(version or new_version(), jwk, _attrs(enabled, created))
        with self.lock:
            self.display_names.setdefault(name.lower(), name)
            self.keys.setdefault(name.lower(), []).append(item)
        return item.version

    def add_certificate(self, name: str, key: PrivateKey | None, certs: list[Issued], *,
                        content_type: str = "application/x-pkcs12", enabled: bool = True,
                        created: int | None = None, pfx_order: list[Issued] | None = None) -> str:
        """certs[0] is the certificate of `key`; the others follow in the PFX (or PEM) in the given order.
        `pfx_order` puts the PFX's certificate bags in another order, the key's certificate anywhere."""
        version = new_version()
        attrs = _attrs(enabled, created)
        if content_type == "application/x-pkcs12" and pfx_order is not None and key is not None:
            value = base64.b64encode(pfx_in_order(key, pfx_order)).decode()
        elif content_type == "application/x-pkcs12":
            value = base64.b64encode(pfx(key, certs)).decode()
        else:
            key_pem = b"" if key is None else key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
            value = (key_pem + b"".join(c.pem for c in certs)).decode()
        with self.lock:
            self.display_names.setdefault(name.lower(), name)
            self.certificates.setdefault(name.lower(), []).append(
                CertificateVersion(version, certs[0].der, content_type, attrs))
        kid = f"https://{{host}}/keys/{name}/{version}"
        self.set_secret(name, value, content_type, enabled=enabled, created=attrs.created, kid=kid, version=version)
        if key is not None:
            self.add_key(name, key, enabled=enabled, created=attrs.created, version=version)
        return version

    def add_raw_certificate(self, name: str, cer: bytes | None, content_type: str = "application/x-pkcs12") -> str:
        """A certificate version whose `cer` is any bytes (or absent), with no secret or key beside it."""
        item = CertificateVersion(new_version(), cer, content_type)
        with self.lock:
            self.display_names.setdefault(name.lower(), name)
            self.certificates.setdefault(name.lower(), []).append(item)
        return item.version

    def set_enabled(self, kind: str, name: str, version: str, enabled: bool) -> None:
        for item in getattr(self, kind)[name.lower()]:
            if item.version == version:
                item.attributes.enabled = enabled


def _attrs(enabled: bool, created: int | None) -> Attributes:
    return Attributes(enabled=enabled, created=next(_CREATED) if created is None else created)


def thumbprint(der: bytes) -> str:
    return b64url(hashlib.sha1(der).digest())
