"""What each object becomes: TestGetContentBytes, TestGetSecret(Error), TestGetCertificate(Error), and the
quirks we fix (no content type, split files of a PFX)."""

from __future__ import annotations

import base64

import pytest

from provider.backends.azure import content
from provider.backends.azure.config import AzureOptions
from provider.backends.azure.objects import KeyVaultObject
from tests.support.azure_fake.pki import make_chain, pfx

SPLIT = AzureOptions(split_cert_and_key=True)


def obj(type_: str = "secret", encoding: str = "utf-8", format_: str = "pem") -> KeyVaultObject:
    return KeyVaultObject(0, "secret1", "", type_, "", 0, format_, encoding, None)


def secret(value: str | None, content_type: str | None = None, kid: str | None = None) -> content.SecretValue:
    return content.SecretValue(value, content_type, kid, "v1")


KID = "https://test.vault.azure.net/keys/secret1/v1"


@pytest.mark.parametrize(
    ("encoding", "value", "expected"),
    [
        ("utf-8", "abcdefg", b"abcdefg"),
        ("utf-8", "TestSecret1", b"TestSecret1"),
        ("utf-8", "h\u00e9llo \u2603", "h\u00e9llo \u2603".encode()),
        ("base64", "QmFzZTY0RW5jb2RlZFN0cmluZw==", b"Base64EncodedString"),
        ("base64", "QmFzZTY0RW5j\nb2RlZFN0cmluZw==", b"Base64EncodedString"),
        ("base64", base64.b64encode(bytes(range(256))).decode(), bytes(range(256))),
        ("hex", "486578456E636F646564537472696E67", b"HexEncodedString"),
        ("hex", "486578456e636f646564537472696e67", b"HexEncodedString"),
        ("hex", "00ff10", b"\x00\xff\x10"),
    ],
)
def test_encodings(encoding: str, value: str, expected: bytes) -> None:
    assert content.render(obj(encoding=encoding), secret(value), AzureOptions(), "secret/secret1") == [("", expected)]


@pytest.mark.parametrize(
    ("encoding", "value", "message"),
    [
        ("base64", "not base64!", "objectEncoding is base64, but the value is not standard padded base64"),
        ("base64", "QmFzZTY0", None),
        ("base64", "QmFzZTY", "not standard padded base64"),
        ("base64", "-_-_", "not standard padded base64"),
        ("hex", "abc", "objectEncoding is hex, but the value is not an even-length string of hex digits"),
        ("hex", "ab cd", "not an even-length string of hex digits"),
        ("hex", "zz", "not an even-length string of hex digits"),
    ],
)
def test_bad_encodings(encoding: str, value: str, message: str | None) -> None:
    if message is None:
        assert content.render(obj(encoding=encoding), secret(value), AzureOptions(), "s")[0][1] == b"Base64"
        return
    with pytest.raises(content.ContentError, match=message) as caught:
        content.render(obj(encoding=encoding), secret(value), AzureOptions(), "s")
    assert value not in str(caught.value)


@pytest.fixture(scope="module")
def pem_and_pfx() -> tuple[bytes, bytes, str]:
    chain = make_chain("ec", intermediates=0)
    return chain.leaf.pem, chain.leaf.key_pem, base64.b64encode(pfx(chain.leaf.key, [chain.leaf])).decode()


def test_plain_secret_is_verbatim_even_with_a_certificate_content_type() -> None:
    # no kid: not certificate-backed (issue #1952 behaviour kept)
    value = secret("secret1value", "application/x-pkcs12")
    assert content.render(obj(), value, AzureOptions(), "s") == [("", b"secret1value")]


def test_certificate_backed_secrets(pem_and_pfx: tuple[bytes, bytes, str]) -> None:
    cert, key, pfx_text = pem_and_pfx
    pem_value = (cert + key).decode()
    assert content.render(obj(), secret(pem_value, "application/x-pem-file", KID), AzureOptions(), "s") == [
        ("", cert + key)]
    assert content.render(obj(format_="pfx"), secret(pfx_text, "application/x-pkcs12", KID), AzureOptions(), "s") == [
        ("", pfx_text.encode())]
    binary = content.render(obj(format_="pfx", encoding="base64"), secret(pfx_text, "application/x-pkcs12", KID),
                            AzureOptions(), "s")
    assert binary == [("", base64.b64decode(pfx_text))]
    (_, data), = content.render(obj(), secret(pfx_text, "application/x-pkcs12", KID), AzureOptions(), "s")
    assert data == key + cert


def test_split_files(pem_and_pfx: tuple[bytes, bytes, str]) -> None:
    cert, key, pfx_text = pem_and_pfx
    pieces = content.render(obj(), secret(pfx_text, "application/x-pkcs12", KID), SPLIT, "s")
    assert pieces == [(".crt", cert), (".key", key), ("", key + cert)]
    pem_pieces = content.render(obj(), secret((cert + key).decode(), "application/x-pem-file", KID), SPLIT, "s")
    assert pem_pieces == [(".crt", cert), (".key", key), ("", cert + key)]


def test_split_files_are_not_made_from_a_pfx_or_a_plain_secret(pem_and_pfx: tuple[bytes, bytes, str]) -> None:
    _, _, pfx_text = pem_and_pfx
    # official issue #1277 wrote two empty files for pfx; we write only the requested PFX
    assert [s for s, _ in content.render(obj(format_="pfx"), secret(pfx_text, "application/x-pkcs12", KID), SPLIT,
                                         "s")] == [""]
    assert content.render(obj(), secret("plain"), SPLIT, "s") == [("", b"plain")]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (secret(None), "secret value is nil"),
        (secret("x", None, KID), "but has no content type; set its contentType"),
        (secret("x", "", KID), "but has no content type"),
        (secret("x", "text/plain", KID), "failed to get certificate. unknown content type 'text/plain'"),
        (secret("invalid", "application/x-pkcs12", KID), "not base64 PKCS#12 data"),
        (content.CertificateValue(None, "v1"), "certificate value is nil"),
        (content.KeyValue("oct", {}, "v1"), "failed to get key. key type 'oct' currently not supported"),
    ],
)
def test_content_errors(value: content.Fetched, message: str) -> None:
    type_ = "cert" if isinstance(value, content.CertificateValue) else "key" if isinstance(
        value, content.KeyValue) else "secret"
    with pytest.raises(content.ContentError, match=message):
        content.render(obj(type_), value, AzureOptions(), "s")


def test_certificate_object_is_the_leaf_pem() -> None:
    assert content.render(obj("cert"), content.CertificateValue(b"test", "v1"), AzureOptions(), "cert/c") == [
        ("", b"-----BEGIN CERTIFICATE-----\ndGVzdA==\n-----END CERTIFICATE-----\n")]
