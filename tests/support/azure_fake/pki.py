"""Certificates for the tests: the fake's TLS (a test CA), and chains/keys to store in the fake Key Vault."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
CURVES = {"P-256": ec.SECP256R1, "P-384": ec.SECP384R1, "P-521": ec.SECP521R1}


def new_key(kind: str = "ec", size: int = 2048) -> PrivateKey:
    """"rsa" or a curve name ("P-256", "P-384", "P-521"); "ec" means P-256."""
    if kind == "rsa":
        return rsa.generate_private_key(65537, size)
    return ec.generate_private_key(CURVES.get(kind, ec.SECP256R1)())


@dataclass
class Issued:
    """A certificate with its private key."""

    cert: x509.Certificate
    key: PrivateKey = field(repr=False)

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )


def issue(
    name: str,
    key: PrivateKey,
    issuer: Issued | None = None,
    *,
    ca: bool = False,
    ski: bool = True,
    aki: bool = True,
    sans: tuple[str, ...] = (),
    days: int = 30,
) -> Issued:
    """A certificate for `name` signed by `issuer` (self-signed when None)."""
    now = datetime.datetime.now(datetime.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    signer_key = issuer.key if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ski:
        builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    if aki:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer_key.public_key()), critical=False
        )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
    if sans:
        names: list[x509.GeneralName] = []
        for san in sans:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(san)))
            except ValueError:
                names.append(x509.DNSName(san))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    return Issued(builder.sign(signer_key, hashes.SHA256()), key)


@dataclass
class Chain:
    """root → intermediates → leaf, as Key Vault certificates are built."""

    root: Issued
    intermediates: list[Issued]
    leaf: Issued

    @property
    def leaf_to_root(self) -> list[Issued]:
        return [self.leaf, *reversed(self.intermediates), self.root]


def make_chain(kind: str = "ec", intermediates: int = 1, leaf_ski: bool = True, name: str = "server") -> Chain:
    root = issue(f"{name}-root", new_key(kind), ca=True)
    chain: list[Issued] = []
    parent = root
    for depth in range(intermediates):
        parent = issue(f"{name}-intermediate{depth + 1}", new_key(kind), parent, ca=True)
        chain.append(parent)
    leaf = issue(name, new_key(kind), parent, ski=leaf_ski)
    return Chain(root, chain, leaf)


def pfx(key: PrivateKey | None, certs: list[Issued]) -> bytes:
    """A password-less PKCS#12 as Key Vault stores it: the key with its certificate, then the others in order.

    `certs[0]` is stored as the key's certificate when a key is given.
    """
    if key is not None:
        first, *rest = certs
        return pkcs12.serialize_key_and_certificates(
            b"kv", key, first.cert, [c.cert for c in rest] or None, serialization.NoEncryption()
        )
    return pkcs12.serialize_key_and_certificates(
        b"kv", None, None, [c.cert for c in certs], serialization.NoEncryption()
    )


def pfx_in_order(key: PrivateKey, certs: list[Issued], password: bytes | None = None) -> bytes:
    """A PKCS#12 whose certificate bags are in exactly the order given, the key's certificate anywhere
    among them (as a PFX imported into Key Vault may have it). Encrypted with 3DES when a password is given."""
    encryption: serialization.KeySerializationEncryption = serialization.NoEncryption()
    if password is not None:
        encryption = (serialization.PrivateFormat.PKCS12.encryption_builder().kdf_rounds(2048)
                      .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC).build(password))
    return pkcs12.serialize_key_and_certificates(b"kv", key, None, [c.cert for c in certs], encryption)


class TestCA:
    """The CA the product trusts in the tests (REQUESTS_CA_BUNDLE) and the fake's server certificate."""

    __test__ = False  # not a pytest class

    def __init__(self, directory: Path, hosts: tuple[str, ...]) -> None:
        self.root = issue("azure-fake test CA", new_key("ec"), ca=True, days=2)
        self.server = issue("azure-fake", new_key("ec"), self.root, sans=hosts, days=2)
        directory.mkdir(parents=True, exist_ok=True)
        self.ca_file = directory / "ca.pem"
        self.cert_file = directory / "server.pem"
        self.key_file = directory / "server-key.pem"
        self.ca_file.write_bytes(self.root.pem)
        self.cert_file.write_bytes(self.server.pem + self.root.pem)
        self.key_file.write_bytes(self.server.key_pem)
        self.key_file.chmod(0o600)
