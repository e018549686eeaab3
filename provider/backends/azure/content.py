"""What one fetched Key Vault object becomes on disk: one function per object type and format.

Input is what the SDK returned, reduced to plain values (fetch.py does that); output is a list of
(file-name suffix, bytes): "" for the main file, ".crt" and ".key" for the split files.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field

from provider.backends.azure import certs
from provider.backends.azure.config import AzureOptions
from provider.backends.azure.objects import KeyVaultObject

PEM_CONTENT_TYPE = "application/x-pem-file"
PKCS12_CONTENT_TYPE = "application/x-pkcs12"


@dataclass(frozen=True)
class SecretValue:
    value: str | None = field(repr=False)
    content_type: str | None
    key_id: str | None  # set when the secret backs a certificate
    version: str


@dataclass(frozen=True)
class KeyValue:
    kty: str
    fields: dict[str, bytes | str | None] = field(repr=False)
    version: str


@dataclass(frozen=True)
class CertificateValue:
    cer: bytes | None
    version: str


Fetched = SecretValue | KeyValue | CertificateValue


class ContentError(ValueError):
    """The object's value cannot become the requested file; the message says what to check."""


def render(obj: KeyVaultObject, value: Fetched, options: AzureOptions, object_id: str) -> list[tuple[str, bytes]]:
    if isinstance(value, SecretValue):
        pieces = secret_pieces(obj, value, options, object_id)
        return [(suffix, encode(obj, text)) for suffix, text in pieces]
    if isinstance(value, KeyValue):
        try:
            return [("", certs.jwk_public_pem(value.kty, value.fields))]
        except certs.MaterialError as exc:
            raise ContentError(f"failed to get key. {exc}") from None
    if value.cer is None:
        raise ContentError("certificate value is nil: Key Vault returned no 'cer'")
    return [("", certs.pem_certificate(value.cer))]


def secret_pieces(
    obj: KeyVaultObject, secret: SecretValue, options: AzureOptions, object_id: str
) -> list[tuple[str, str]]:
    """The secret's text, or for a certificate-backed secret the PEM (or PFX) text, plus split files."""
    if secret.value is None:
        raise ContentError("secret value is nil: Key Vault returned no value")
    if not secret.key_id:
        return [("", secret.value)]
    content_type = (secret.content_type or "").strip().lower()
    if content_type == PEM_CONTENT_TYPE:
        text = secret.value
    elif content_type == PKCS12_CONTENT_TYPE:
        if obj.format == "pfx":
            return [("", secret.value)]
        try:
            text = certs.pkcs12_to_pem(secret.value, options.construct_pem_chain, object_id).decode()
        except certs.MaterialError as exc:
            raise ContentError(str(exc)) from None
    elif not content_type:
        raise ContentError(
            "the secret backs a certificate (it has a kid) but has no content type; set its contentType to "
            f"{PKCS12_CONTENT_TYPE} or {PEM_CONTENT_TYPE}"
        )
    else:
        raise ContentError(
            f"failed to get certificate. unknown content type '{secret.content_type}'; expected "
            f"{PKCS12_CONTENT_TYPE} or {PEM_CONTENT_TYPE}"
        )
    if not options.split_cert_and_key:
        return [("", text)]
    cert_pem, key_pem = certs.split_cert_and_key(text.encode())
    return [(".crt", cert_pem.decode()), (".key", key_pem.decode()), ("", text)]


def encode(obj: KeyVaultObject, text: str) -> bytes:
    """objectEncoding: the secret's text as UTF-8, or decoded from base64 (padded) or hex."""
    if obj.encoding == "base64":
        try:
            # Like Go's decoder, which the official provider uses: line breaks are skipped.
            return base64.b64decode(text.replace("\r", "").replace("\n", ""), validate=True)
        except (binascii.Error, ValueError):
            raise ContentError(
                "objectEncoding is base64, but the value is not standard padded base64; check objectEncoding"
            ) from None
    if obj.encoding == "hex":
        try:
            return binascii.unhexlify(text)
        except (binascii.Error, ValueError):
            raise ContentError(
                "objectEncoding is hex, but the value is not an even-length string of hex digits; "
                "check objectEncoding"
            ) from None
    return text.encode("utf-8")
