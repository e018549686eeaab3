"""Certificate and key material: PKCS#12 → PEM, chain order, JWK → public key PEM, PEM blocks.

Pure functions over bytes (cryptography only), so each rule has a table test. Errors never include
the material itself.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.serialization import pkcs12

from provider.backends.azure import pfxorder

log = logging.getLogger(__name__)

CHAIN_INCOMPLETE_WARNING = (
    "certificate chain is not complete due to missing intermediate/root certificates in the cert from key "
    "vault; the certificates keep their order in the PFX"
)
# When the PFX's own order cannot be read (pfxorder.py says when), the key's certificate comes first.
CHAIN_INCOMPLETE_KEY_FIRST_WARNING = (
    "certificate chain is not complete due to missing intermediate/root certificates in the cert from key "
    "vault; the certificates are written with the key's certificate first, then in their order in the PFX"
)
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----\r?\n?", re.DOTALL)
_CURVES: dict[str, ec.EllipticCurve] = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1(), "P-521": ec.SECP521R1()}


class MaterialError(ValueError):
    """The material in Key Vault cannot be turned into the requested output; the message says why."""


@dataclass(frozen=True)
class PemBlock:
    kind: str  # CERTIFICATE, PRIVATE KEY, ...
    text: bytes  # the whole block, ending with a newline


def pem_certificate(der: bytes) -> bytes:
    """DER bytes as one CERTIFICATE block, 64 columns, as the official provider writes `cert` objects."""
    return pem_block("CERTIFICATE", der)


def pem_block(kind: str, der: bytes) -> bytes:
    body = base64.b64encode(der)
    lines = [body[i : i + 64] for i in range(0, len(body), 64)] or [b""]
    return b"".join([f"-----BEGIN {kind}-----\n".encode(), *(line + b"\n" for line in lines),
                     f"-----END {kind}-----\n".encode()])


def pem_blocks(data: bytes) -> list[PemBlock]:
    return [
        PemBlock(match.group(1).decode(), match.group(0) if match.group(0).endswith(b"\n") else match.group(0) + b"\n")
        for match in _PEM_BLOCK.finditer(data)
    ]


def split_cert_and_key(data: bytes) -> tuple[bytes, bytes]:
    """(all CERTIFICATE blocks, all other blocks), each in content order."""
    blocks = pem_blocks(data)
    certs = b"".join(b.text for b in blocks if b.kind == "CERTIFICATE")
    keys = b"".join(b.text for b in blocks if b.kind != "CERTIFICATE")
    return certs, keys


def pkcs12_to_pem(pfx_base64: str, construct_chain: bool, object_id: str) -> bytes:
    """A Key Vault PKCS#12 secret (base64 text, no password) → PKCS#8 key, then the certificates.

    Certificates leaf → intermediates → root with --construct-pem-chain when they form one chain;
    otherwise (no --construct-pem-chain, or a chain that cannot be completed) in the order the PFX lists
    them, as the official provider writes them.
    """
    try:
        pfx = base64.b64decode(pfx_base64.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise MaterialError("the secret's value is not base64 PKCS#12 data, as its content type says") from None
    bundle, password = _load_pkcs12(pfx)
    out = b""
    if bundle.key is not None:
        out += bundle.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    certs, in_pfx_order = certificates_in_order(pfx, password, bundle)
    pems = [c.public_bytes(serialization.Encoding.PEM) for c in certs]
    if construct_chain and certs:
        order = chain_order(certs)
        if order is None:
            warning = CHAIN_INCOMPLETE_WARNING if in_pfx_order else CHAIN_INCOMPLETE_KEY_FIRST_WARNING
            log.warning(warning, extra={"fields": {"object": object_id}})
        else:
            pems = [pems[i] for i in order]
    return out + b"".join(pems)


def certificates_in_order(
    pfx: bytes, password: bytes | None, bundle: pkcs12.PKCS12KeyAndCertificates
) -> tuple[list[x509.Certificate], bool]:
    """The PFX's certificates in its own order (True), else the key's certificate first (False)."""
    loaded = [c.certificate for c in ([bundle.cert] if bundle.cert else []) + list(bundle.additional_certs)]
    if bundle.cert is None:
        return loaded, True  # nothing was taken out of the list
    ordered = pfxorder.certificates_in_pfx_order(pfx, password)
    if ordered is None or sorted(c.fingerprint(SHA256()) for c in ordered) != sorted(
        c.fingerprint(SHA256()) for c in loaded
    ):
        return loaded, False
    return ordered, True


def _load_pkcs12(pfx: bytes) -> tuple[pkcs12.PKCS12KeyAndCertificates, bytes | None]:
    # Key Vault's PFX has no password; OpenSSL tells "no password" and "empty password" apart.
    for password in (None, b""):
        try:
            return pkcs12.load_pkcs12(pfx, password), password
        except ValueError:
            continue
    raise MaterialError("the secret's value is not a PKCS#12 file that opens without a password")


def chain_order(certs: Sequence[x509.Certificate]) -> list[int] | None:
    """Indexes leaf → root, linking each certificate's AKI to its issuer's SKI; None if not one chain.

    The parent of i is the first j != i whose SKI equals i's AKI; the leaf is the first certificate that
    is nobody's parent. Any certificate left off the walk (a missing intermediate, no AKI) or a cycle
    means the chain is incomplete.
    """
    skis = [_extension_value(c, x509.SubjectKeyIdentifier) for c in certs]
    akis = [_extension_value(c, x509.AuthorityKeyIdentifier) for c in certs]
    parent: dict[int, int] = {}
    for i in range(len(certs)):
        if akis[i] is None:
            continue
        for j in range(len(certs)):
            if j != i and skis[j] == akis[i]:
                parent[i] = j
                break
    parents = set(parent.values())
    leaf = next((i for i in range(len(certs)) if i not in parents), None)
    if leaf is None:
        return None
    order = [leaf]
    while order[-1] in parent:
        nxt = parent[order[-1]]
        if nxt in order:
            return None
        order.append(nxt)
    return order if len(order) == len(certs) else None


def _extension_value(cert: x509.Certificate, kind: type) -> bytes | None:
    try:
        value: x509.ExtensionType = cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None
    if isinstance(value, x509.AuthorityKeyIdentifier):
        return value.key_identifier
    return value.digest if isinstance(value, x509.SubjectKeyIdentifier) else None


def jwk_public_pem(kty: str, fields: dict[str, bytes | str | None]) -> bytes:
    """The public half of a Key Vault JSON Web Key as SubjectPublicKeyInfo PEM (BEGIN PUBLIC KEY)."""
    key_type = kty.upper()
    if key_type in ("RSA", "RSA-HSM"):
        n, e = _int(fields.get("n")), _int(fields.get("e"))
        if n is None or e is None:
            raise MaterialError("the RSA key has no modulus or exponent")
        public: rsa.RSAPublicKey | ec.EllipticCurvePublicKey = rsa.RSAPublicNumbers(e, n).public_key()
    elif key_type in ("EC", "EC-HSM"):
        curve_name = str(fields.get("crv") or "")
        curve = _CURVES.get(curve_name)
        if curve is None:
            raise MaterialError(f"curve {curve_name} is not supported")
        x, y = _int(fields.get("x")), _int(fields.get("y"))
        if x is None or y is None:
            raise MaterialError("the EC key has no x or y coordinate")
        try:
            public = ec.EllipticCurvePublicNumbers(x, y, curve).public_key()
        except ValueError:
            raise MaterialError(f"the EC key is not a point on {curve_name}") from None
    else:
        raise MaterialError(f"key type '{kty}' currently not supported")
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _int(value: bytes | str | None) -> int | None:
    if value is None or isinstance(value, str) or len(value) == 0:
        return None
    return int.from_bytes(value, "big")
