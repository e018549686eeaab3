"""The certificates of a PKCS#12 file in the order its bags list them.

cryptography's load_pkcs12 (OpenSSL's PKCS12_parse) takes the certificate that matches the key out of
the list, so the PFX's own order is lost; the official provider writes that order when it cannot build
a chain. Decrypting stays OpenSSL's job: this drops the key bags from a copy of the PFX, gives the copy
a new MAC under the same password, and loads it again, so that every certificate comes back in the
file's order. Only the plain (unencrypted) parts are rewritten; the encrypted parts, where the
certificates usually are, are copied as they are. None when a file is laid out otherwise (a key inside
an encrypted part, BER indefinite lengths): the caller keeps cryptography's order then.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12

_SEQUENCE, _INTEGER, _OCTETS, _OCTETS_CONSTRUCTED, _OID, _NULL, _EXPLICIT_0 = 0x30, 0x02, 0x04, 0x24, 0x06, 0x05, 0xA0


def _oid(dotted: str) -> bytes:
    """The DER content octets of an object identifier."""
    first, second, *rest = (int(p) for p in dotted.split("."))
    out = bytearray([first * 40 + second])
    for arc in rest:
        chunk = [arc & 0x7F]
        while arc > 0x7F:
            arc >>= 7
            chunk.append(0x80 | (arc & 0x7F))
        out += bytes(reversed(chunk))
    return bytes(out)


DATA = _oid("1.2.840.113549.1.7.1")
KEY_BAGS = {_oid("1.2.840.113549.1.12.10.1.1"), _oid("1.2.840.113549.1.12.10.1.2")}  # keyBag, shrouded
SHA1 = _oid("1.3.14.3.2.26")


class _Layout(ValueError):
    """A PFX this module does not take apart."""


def certificates_in_pfx_order(pfx: bytes, password: bytes | None) -> list[x509.Certificate] | None:
    """Every certificate of `pfx` (which opened with `password`) in the order of its bags, or None."""
    try:
        bundle = pkcs12.load_pkcs12(_without_key_bags(pfx, password), password)
    except ValueError:  # _Layout, or OpenSSL refusing the copy
        return None
    if bundle.key is not None or bundle.cert is not None:
        return None  # a key in an encrypted part: its certificate was taken out again
    return [c.certificate for c in bundle.additional_certs]


def _without_key_bags(pfx: bytes, password: bytes | None) -> bytes:
    tag, body, _ = _read(pfx)
    items = _items(body)
    if tag != _SEQUENCE or len(items) < 2 or items[0][0] != _INTEGER:
        raise _Layout("not a PFX")
    content_type, (inner_tag, inner) = _content_info(items[1][1])
    if content_type != DATA:
        raise _Layout("a PFX signed with a public key")
    tag, parts, _ = _read(_octets(inner_tag, inner))
    if tag != _SEQUENCE:
        raise _Layout("no AuthenticatedSafe")
    kept = []
    for part_tag, part in _items(parts):
        content_type, (inner_tag, inner) = _content_info(part)
        if content_type == DATA:
            kept.append(_data_content_info(_safe_contents_without_keys(_octets(inner_tag, inner))))
        else:
            kept.append(_encode(part_tag, part))  # encrypted: copied as it is
    authenticated_safe = _encode(_SEQUENCE, b"".join(kept))
    return _encode(_SEQUENCE, _encode(_INTEGER, items[0][1]) + _data_content_info(authenticated_safe)
                   + _mac_data(authenticated_safe, password))


def _safe_contents_without_keys(safe_contents: bytes) -> bytes:
    tag, body, _ = _read(safe_contents)
    if tag != _SEQUENCE:
        raise _Layout("no SafeContents")
    bags = [bag for _, bag in _items(body)]
    kept = [bag for bag in bags if _items(bag)[0][1] not in KEY_BAGS]
    return _encode(_SEQUENCE, b"".join(_encode(_SEQUENCE, bag) for bag in kept))


def _content_info(value: bytes) -> tuple[bytes, tuple[int, bytes]]:
    """(contentType, the content's (tag, value)) of a ContentInfo."""
    items = _items(value)
    if len(items) < 2 or items[0][0] != _OID or items[1][0] != _EXPLICIT_0:
        raise _Layout("not a ContentInfo")
    tag, inner, _ = _read(items[1][1])
    return items[0][1], (tag, inner)


def _data_content_info(payload: bytes) -> bytes:
    return _encode(_SEQUENCE, _encode(_OID, DATA) + _encode(_EXPLICIT_0, _encode(_OCTETS, payload)))


def _octets(tag: int, value: bytes) -> bytes:
    if tag == _OCTETS:
        return value
    if tag == _OCTETS_CONSTRUCTED:  # BER: the string in pieces
        return b"".join(_octets(t, v) for t, v in _items(value))
    raise _Layout("not an OCTET STRING")


def _mac_data(authenticated_safe: bytes, password: bytes | None) -> bytes:
    """A MacData (HMAC-SHA1, PKCS#12 key derivation) over the copy, so OpenSSL picks the same password."""
    salt = os.urandom(8)
    key = pkcs12_kdf(_bmp(password), salt, 1, 3, 20)
    digest = hmac.new(key, authenticated_safe, hashlib.sha1).digest()
    algorithm = _encode(_SEQUENCE, _encode(_OID, SHA1) + _encode(_NULL, b""))
    return _encode(_SEQUENCE, _encode(_SEQUENCE, algorithm + _encode(_OCTETS, digest))
                   + _encode(_OCTETS, salt))  # iterations: 1, the DEFAULT, so not written


def _bmp(password: bytes | None) -> bytes:
    # OpenSSL: no password is no bytes; a password (even empty) is UTF-16BE with a terminating zero.
    return b"" if password is None else password.decode("utf-8").encode("utf-16-be") + b"\x00\x00"


def pkcs12_kdf(password: bytes, salt: bytes, iterations: int, purpose: int, size: int) -> bytes:
    """RFC 7292 appendix B.2 with SHA-1 (purpose 1 key, 2 IV, 3 MAC key)."""
    v = 64  # SHA-1's block size in bytes

    def fill(data: bytes) -> bytes:
        length = v * -(-len(data) // v)
        return (data * (length // len(data) + 1))[:length] if data else b""

    diversifier = bytes([purpose]) * v
    block = bytearray(fill(salt) + fill(password))
    out = b""
    while len(out) < size:
        a = hashlib.sha1(diversifier + bytes(block)).digest()
        for _ in range(iterations - 1):
            a = hashlib.sha1(a).digest()
        out += a
        b = int.from_bytes(fill(a), "big")
        for j in range(0, len(block), v):
            value = (int.from_bytes(block[j : j + v], "big") + b + 1) % (1 << (8 * v))
            block[j : j + v] = value.to_bytes(v, "big")
    return out[:size]


def _read(data: bytes, pos: int = 0) -> tuple[int, bytes, int]:
    """(tag, value, next position) of the DER element at pos."""
    if pos + 2 > len(data):
        raise _Layout("truncated")
    tag, first = data[pos], data[pos + 1]
    pos += 2
    length = first
    if first & 0x80:
        count = first & 0x7F
        if not 1 <= count <= 4 or pos + count > len(data):
            raise _Layout("indefinite or oversized length")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    if pos + length > len(data):
        raise _Layout("truncated")
    return tag, data[pos : pos + length], pos + length


def _items(value: bytes) -> list[tuple[int, bytes]]:
    out, pos = [], 0
    while pos < len(value):
        tag, inner, pos = _read(value, pos)
        out.append((tag, inner))
    return out


def _encode(tag: int, value: bytes) -> bytes:
    length = len(value)
    if length < 0x80:
        return bytes([tag, length]) + value
    size = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + value
